package main

import (
	"strings"
	"testing"
)

// Not on a terminal, progress is a line at every 10% and one at the end.
func TestProgressLines(t *testing.T) {
	tests := []struct {
		name      string
		total     int
		wantLines []string // prefixes of the lines
	}{
		{name: "hundred", total: 100, wantLines: []string{
			"10/100 done (10%)", "20/100", "30/100", "40/100", "50/100", "60/100", "70/100", "80/100", "90/100", "100/100 done (100%)",
		}},
		{name: "fewer than ten", total: 3, wantLines: []string{"1/3 done (33%)", "2/3 done (66%)", "3/3 done (100%)"}},
		{name: "uneven", total: 25, wantLines: []string{
			"3/25 done (12%)", "5/25", "8/25", "10/25", "13/25", "15/25", "18/25", "20/25", "23/25", "25/25",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf strings.Builder
			p := newProgress(&buf, "round 1/2", tt.total)
			for i := range tt.total {
				v := correct
				if i == 0 {
					v = failed
				}
				p.add(result{Verdict: v})
			}
			p.finish()
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			if len(lines) != len(tt.wantLines) {
				t.Fatalf("progress printed %d lines, want %d:\n%s", len(lines), len(tt.wantLines), buf.String())
			}
			for i, want := range tt.wantLines {
				if !strings.HasPrefix(lines[i], "round 1/2: "+want) {
					t.Errorf("line %d = %q, want prefix %q", i, lines[i], "round 1/2: "+want)
				}
			}
			last := lines[len(lines)-1]
			if want := "1 failed"; !strings.Contains(last, want) {
				t.Errorf("last line = %q, want it to contain %q", last, want)
			}
		})
	}
}

// Not on a terminal, a tick writes a line only after a quiet spell.
func TestProgressTick(t *testing.T) {
	var buf strings.Builder
	p := newProgress(&buf, "", 100)
	p.tick()
	if buf.Len() != 0 {
		t.Fatalf("tick() right after start wrote %q, want nothing", buf.String())
	}
	p.shown = p.shown.Add(-quietFor) // as if nothing was written for quietFor
	p.tick()
	if got, want := buf.String(), "0/100 done (0%): 0 correct, 0 wrong, 0 failed"; !strings.HasPrefix(got, want) {
		t.Errorf("tick() after a quiet spell wrote %q, want prefix %q", got, want)
	}
}
