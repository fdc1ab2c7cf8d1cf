package classify

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRegisterFlags(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		check func(Config) string // "" when c is as wanted
	}{
		{name: "defaults kept", check: func(c Config) string {
			if d := DefaultConfig(); c.Backend != d.Backend || c.ModelDir != d.ModelDir || c.Command != nil || c.Timeout != d.Timeout {
				return "want DefaultConfig's values"
			}
			return ""
		}},
		{name: "exec command split on spaces", args: []string{"-classifier", "exec", "-exec-command", "python3  face_recognition.py {}", "-exec-timeout", "3s"},
			check: func(c Config) string {
				if c.Backend != Exec || !slices.Equal(c.Command, []string{"python3", "face_recognition.py", "{}"}) || c.Timeout != 3*time.Second {
					return "want exec, [python3 face_recognition.py {}], 3s"
				}
				return ""
			}},
		{name: "face", args: []string{"-models", "m", "-gallery", "g", "-gallery-cache", "c", "-threshold", "0.5", "-sessions", "3"},
			check: func(c Config) string {
				if c.ModelDir != "m" || c.Gallery != "g" || c.CacheDir != "c" || c.Threshold != 0.5 || c.Sessions != 3 {
					return "want models m, gallery g, cache c, threshold 0.5, 3 sessions"
				}
				return ""
			}},
		{name: "onnx", args: []string{"-classifier", "onnx", "-onnx-model", "m.onnx", "-onnx-labels", "l.txt", "-onnx-layout", "NHWC"},
			check: func(c Config) string {
				if c.Backend != ONNX || c.ONNX.Model != "m.onnx" || c.ONNX.Labels != "l.txt" || c.ONNX.Layout != "NHWC" {
					return "want onnx m.onnx l.txt NHWC"
				}
				return ""
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			c.RegisterFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatalf("Parse(%q) = %v", tc.args, err)
			}
			if msg := tc.check(c); msg != "" {
				t.Errorf("after Parse(%q): config %+v; %s", tc.args, c, msg)
			}
		})
	}
}

func TestRegisterFlagsHelpShowsCommand(t *testing.T) {
	c := DefaultConfig()
	c.Command = []string{"python3", "x.py", "{}"}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var help strings.Builder
	fs.SetOutput(&help)
	c.RegisterFlags(fs)
	fs.PrintDefaults()
	if h := help.String(); !strings.Contains(h, "-exec-command command\n") || !strings.Contains(h, "(default python3 x.py {})") {
		t.Errorf("PrintDefaults() = %q, want -exec-command named command with default python3 x.py {}", help.String())
	}
}
