package elastiqtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

// serve is a program double: it prints a serving line, then runs until its
// context ends and returns nil, as a program on SIGTERM.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fmt.Fprintf(stdout, "%s: serving on http://%s\n", args[0], getenv("ADDR"))
	<-ctx.Done()
	fmt.Fprintln(stderr, "stopped")
	return nil
}

func TestProgram(t *testing.T) {
	p := StartProgram(t, serve, []string{"prog"}, func(k string) string { return map[string]string{"ADDR": "127.0.0.1:1"}[k] })
	m := p.WaitOutput(regexp.MustCompile(`serving on (http://\S+)`), Timeout)
	if m[1] != "http://127.0.0.1:1" {
		t.Errorf("WaitOutput() = %q, want submatch http://127.0.0.1:1", m)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop() = %v, want nil", err)
	}
	if got := p.Stderr.String(); got != "stopped\n" {
		t.Errorf("Stderr = %q, want %q", got, "stopped\n")
	}
}

func TestProgramFailures(t *testing.T) {
	failing := func(context.Context, []string, func(string) string, io.Writer, io.Writer) error {
		return errors.New("bad flag")
	}
	for _, tc := range []struct {
		name string
		run  RunFunc
		call func(*Program)
		want string
	}{
		{name: "returns before output", run: failing,
			call: func(p *Program) { p.WaitOutput(regexp.MustCompile("serving"), Timeout) }, want: "run() = bad flag before printing"},
		{name: "no matching output", run: serve,
			call: func(p *Program) { p.WaitOutput(regexp.MustCompile("never printed"), 50*time.Millisecond) }, want: "no output matching"},
		{name: "does not return", run: serve,
			call: func(p *Program) { p.Wait(50 * time.Millisecond) }, want: "still running after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{TB: t}
			errs := r.run(func() { tc.call(StartProgram(r, tc.run, []string{"prog"}, func(string) string { return "" })) })
			r.finish()
			if len(errs) != 1 || !strings.Contains(errs[0], tc.want) {
				t.Errorf("recorded %q, want one error containing %q", errs, tc.want)
			}
		})
	}
}
