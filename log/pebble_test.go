package log

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

func openPebbleForTest(t *testing.T, partitions int32) (Log, func() Log) {
	dir := t.TempDir()
	open := func() Log {
		t.Helper()
		l, err := OpenPebble(PebbleOptions{Dir: dir, Partitions: partitions})
		if err != nil {
			t.Fatalf("OpenPebble: %v", err)
		}
		return l
	}
	return open(), open
}

func TestPebbleContract(t *testing.T) {
	runLogContract(t, openPebbleForTest)
}

// A stored record that no longer matches its checksum is an error for the
// reader, never a record.
func TestPebbleCorruptRecord(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenPebble(PebbleOptions{Dir: dir, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"zero", "one", "two"} {
		appendOK(t, l, "p/q", v)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Flip one bit of record 1's value behind the log's back.
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietPebble{t}})
	if err != nil {
		t.Fatal(err)
	}
	k := recordKey(0, 1)
	v, closer, err := db.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), v...)
	closer.Close()
	bad[len(bad)-1] ^= 0x01
	if err := db.Set(k, bad, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	l, err = OpenPebble(PebbleOptions{Dir: dir, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, from := range []int64{0, 1} {
		c := openCursor(t, l, 0, from)
		recs, err := c.Next(ctxFor(t), 10)
		if !errors.Is(err, ErrChecksum) {
			t.Fatalf("Next from %d over a corrupt record = %d records, %v; want ErrChecksum", from, len(recs), err)
		}
		if len(recs) != 0 {
			t.Fatalf("Next from %d returned records with the error", from)
		}
	}
	// Records after the corrupt one are still readable on their own.
	recs := readN(t, openCursor(t, l, 0, 2), 1)
	if string(recs[0].Value) != "two" {
		t.Fatalf("record 2 = %q", recs[0].Value)
	}
}

// quietPebble keeps Pebble's recovery chatter out of the test output.
type quietPebble struct{ t *testing.T }

func (quietPebble) Infof(string, ...any)             {}
func (quietPebble) Errorf(string, ...any)            {}
func (q quietPebble) Fatalf(format string, a ...any) { q.t.Fatalf(format, a...) }
