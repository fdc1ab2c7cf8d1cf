package flagenv_test

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq/flagenv"
)

func TestParse(t *testing.T) {
	env := map[string]string{"ELASTIQ_BOOT_DELAY": "3s", "ELASTIQ_MAX_WORKERS": "4", "ELASTIQ_ADDR": "127.0.0.1:1"}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	boot := fs.Duration("boot-delay", 0, "")
	max := fs.Int("max-workers", 19, "")
	addr := fs.String("addr", "127.0.0.1:8080", "")
	other := fs.String("other", "default", "")
	if err := flagenv.Parse(fs, []string{"-max-workers", "7"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *boot != 3*time.Second || *max != 7 || *addr != "127.0.0.1:1" || *other != "default" {
		t.Errorf("Parse() = boot %v, max %d, addr %q, other %q; want 3s, 7 (flag wins), 127.0.0.1:1, default",
			*boot, *max, *addr, *other)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{name: "bad environment value", env: map[string]string{"ELASTIQ_N": "many"}},
		{name: "bad flag value", args: []string{"-n", "many"}},
		{name: "stray argument", args: []string{"serve"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			fs.Int("n", 1, "")
			if err := flagenv.Parse(fs, tt.args, func(k string) string { return tt.env[k] }); err == nil {
				t.Errorf("Parse(%q) = nil, want an error", tt.args)
			}
		})
	}
	if got := flagenv.EnvName("request-queue-url"); got != "ELASTIQ_REQUEST_QUEUE_URL" {
		t.Errorf("EnvName(request-queue-url) = %q, want ELASTIQ_REQUEST_QUEUE_URL", got)
	}
}

func TestRequired(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("bucket", "", "")
	fs.String("request-queue-url", "", "")
	fs.String("given", "", "")
	if err := fs.Parse([]string{"-given", "x"}); err != nil {
		t.Fatal(err)
	}
	err := flagenv.Required(fs, "bucket", "request-queue-url", "given")
	want := "missing required flags: -bucket (or ELASTIQ_BUCKET), -request-queue-url (or ELASTIQ_REQUEST_QUEUE_URL)"
	if err == nil || err.Error() != want {
		t.Errorf("Required() = %v, want %q", err, want)
	}
	if err := flagenv.Required(fs, "given"); err != nil {
		t.Errorf("Required(given) = %v, want nil", err)
	}
}
