package worker

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestLazyWith(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})).With("component", "worker")
	log := lazyWith(lazyWith(base, slog.String("message", "m-1")), slog.String("id", "r-1"))
	log.Debug("not written")
	log.Info("handled", "status", "done")
	log.WithGroup("g").Info("grouped", "k", "v")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("wrote %d lines, want 2:\n%s", len(lines), buf.String())
	}
	for _, want := range []string{"component=worker", "message=m-1", "id=r-1", "status=done"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("line %q lacks %q", lines[0], want)
		}
	}
	for _, want := range []string{"message=m-1", "id=r-1", "g.k=v"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("grouped line %q lacks %q", lines[1], want)
		}
	}
}
