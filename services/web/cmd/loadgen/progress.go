package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progress shows how far a round has got on stderr: on a terminal, a single
// line redrawn at most every redrawEvery; otherwise a line at every 10%, and
// one after quietFor without any, so a long wait (instances booting) shows.
// It is called from one goroutine only.
type progress struct {
	w       io.Writer
	tty     bool
	name    string // "round 2/3", or "" for a single round
	total   int
	start   time.Time
	counts  [failed + 1]int // by verdict
	done    int
	nextPct int       // when not a terminal: the next multiple of 10% to report
	shown   time.Time // when a line was last written
}

const (
	redrawEvery = 100 * time.Millisecond
	quietFor    = 10 * time.Second
)

func newProgress(w io.Writer, name string, total int) *progress {
	now := time.Now()
	return &progress{w: w, tty: isTerminal(w), name: name, total: total, start: now, shown: now, nextPct: 10}
}

// add counts a finished request and reports if it is time to.
func (p *progress) add(r result) {
	p.counts[r.Verdict]++
	p.done++
	last := p.done == p.total
	if p.tty {
		if last || time.Since(p.shown) >= redrawEvery {
			p.show()
		}
		return
	}
	if pct := p.done * 100 / p.total; pct >= p.nextPct || last {
		p.nextPct = pct - pct%10 + 10
		p.show()
	}
}

// tick is called every second or so: it keeps the time on a terminal line
// current, and elsewhere writes a line if none was written for a while.
func (p *progress) tick() {
	if p.tty || time.Since(p.shown) >= quietFor {
		p.show()
	}
}

func (p *progress) show() {
	p.shown = time.Now()
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", p.line())
		return
	}
	fmt.Fprintln(p.w, p.line())
}

// finish ends the terminal line.
func (p *progress) finish() {
	if p.tty && p.done > 0 {
		fmt.Fprintln(p.w)
	}
}

func (p *progress) line() string {
	prefix := ""
	if p.name != "" {
		prefix = p.name + ": "
	}
	return fmt.Sprintf("%s%d/%d done (%d%%): %d correct, %d wrong, %d failed, %s",
		prefix, p.done, p.total, p.done*100/p.total,
		p.counts[correct], p.counts[wrong], p.counts[failed], time.Since(p.start).Round(time.Millisecond))
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
