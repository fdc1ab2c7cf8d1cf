// Package flagenv parses a program's flags with a fallback to the
// environment, the same way for every elastiq program: a flag not given on
// the command line takes the value of ELASTIQ_ plus its name in upper case
// with dashes as underscores (-boot-delay from ELASTIQ_BOOT_DELAY). A flag
// on the command line wins.
package flagenv

import (
	"flag"
	"fmt"
	"strings"
)

// EnvName is the environment variable of flag name.
func EnvName(name string) string {
	return "ELASTIQ_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Parse parses args (without the program name) into fs, then sets every
// flag not given from its environment variable, if that is set. Stray
// arguments are an error.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		name := EnvName(f.Name)
		if v := getenv(name); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	})
	return err
}

// Required reports, in one error, every named flag of fs that is still
// empty after Parse, each with its environment variable.
func Required(fs *flag.FlagSet, names ...string) error {
	var missing []string
	for _, name := range names {
		if fs.Lookup(name).Value.String() == "" {
			missing = append(missing, fmt.Sprintf("-%s (or %s)", name, EnvName(name)))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing required flags: %s", strings.Join(missing, ", "))
	}
	return nil
}
