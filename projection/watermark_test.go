package projection

import (
	"math/rand/v2"
	"testing"
)

// TestWatermarkCallsExactlyThoseReached: an advance calls the callbacks of
// the offsets it passed, each once, and no others; callbacks given up on
// are never called; a callback for an applied offset runs at once.
func TestWatermarkCallsExactlyThoseReached(t *testing.T) {
	var w watermark
	const n = 5000
	called := make([]int, n)
	var gone []*waiter
	for _, off := range rand.Perm(n) {
		wt := w.onApplied(int64(off), func() { called[off]++ })
		if off%7 == 0 {
			gone = append(gone, wt)
		}
	}
	for _, wt := range gone {
		w.abandon(wt)
	}
	for to := int64(0); to <= n; to += 97 {
		w.advance(to)
		for off := range called {
			want := 0
			if int64(off) < to && off%7 != 0 {
				want = 1
			}
			if called[off] != want {
				t.Fatalf("after advance to %d: offset %d called %d times, want %d", to, off, called[off], want)
			}
		}
	}
	w.advance(n)
	if len(w.waiting) != 0 {
		t.Fatalf("%d callbacks left after the last offset", len(w.waiting))
	}
	ran := false
	w.onApplied(n-1, func() { ran = true })
	if !ran {
		t.Fatal("a callback for an applied offset did not run at once")
	}
}

// TestWatermarkDropsAbandoned: callbacks given up on while nothing is
// applied do not pile up.
func TestWatermarkDropsAbandoned(t *testing.T) {
	var w watermark
	for i := range 100000 {
		w.abandon(w.onApplied(int64(i), func() { t.Error("an abandoned callback ran") }))
	}
	if len(w.waiting) > 2048 {
		t.Fatalf("%d abandoned callbacks kept", len(w.waiting))
	}
	w.advance(1 << 40)
}
