package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress reports how far a long run (a replay, a verification) has got:
// a progress bar with events/s and ETA on a terminal, a plain line every
// few seconds otherwise (logs, CI), and a summary at the end.
type progress struct {
	w      io.Writer
	what   string
	bar    *progressbar.ProgressBar
	start  time.Time
	last   time.Time
	every  time.Duration
	done   int64
	total  int64
	closed bool
}

// newProgress reports to w; mode is "auto" (a bar when w is a terminal),
// "bar", "lines" or "none".
func newProgress(w io.Writer, what, mode string) (*progress, error) {
	p := &progress{w: w, what: what, start: time.Now(), every: 5 * time.Second}
	switch mode {
	case "auto":
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = "bar"
		}
	case "bar", "lines", "none":
	default:
		return nil, fmt.Errorf("--progress must be auto, bar, lines or none, not %q", mode)
	}
	switch mode {
	case "bar":
		p.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("events"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionFullWidth(),
			progressbar.OptionShowElapsedTimeOnFinish(),
		)
	case "none":
		p.w = io.Discard
	}
	p.last = p.start
	return p, nil
}

// update is a projection.RebuildOptions.Progress.
func (p *progress) update(done, total int64) {
	p.done = done
	if p.bar != nil {
		if total != p.total {
			p.bar.ChangeMax64(total)
		}
		p.total = total
		p.bar.Set64(done)
		return
	}
	p.total = total
	if now := time.Now(); now.Sub(p.last) >= p.every {
		p.last = now
		p.line(now)
	}
}

func (p *progress) line(now time.Time) {
	el := now.Sub(p.start).Seconds()
	rate := float64(p.done) / max(el, 1e-9)
	pct := 100.0
	if p.total > 0 {
		pct = 100 * float64(p.done) / float64(p.total)
	}
	eta := "-"
	if rate > 0 && p.total >= p.done {
		eta = time.Duration(float64(p.total-p.done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "%s: %d/%d events (%.1f%%), %.0f events/s, ETA %s\n", p.what, p.done, p.total, pct, rate, eta)
}

// finish ends the bar and writes the summary line.
func (p *progress) finish() {
	if p.closed {
		return
	}
	p.closed = true
	if p.bar != nil {
		p.bar.Finish()
		fmt.Fprintln(p.w)
	}
	el := time.Since(p.start)
	fmt.Fprintf(p.w, "%s: %d events in %s (%.0f events/s)\n", p.what, p.done, el.Round(time.Millisecond), float64(p.done)/max(el.Seconds(), 1e-9))
}
