package projection

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	hlog "github.com/heraldmq/herald/log"
)

// Tests of snapshots on real Pebble logs and stores: a snapshot of a
// projection that is being applied to is the state at its applied
// offsets, a projection restored from it catches up to the state of a
// full replay, and the snapshot outlives what the restored one does.

// postConcurrently appends, from one writer per queue, posts with claims
// and deletes among them, each writer's events in time order. It returns
// once every writer is done. It may run outside the test's goroutine.
func postConcurrently(t *testing.T, l hlog.Log, queues, events int) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	var wg sync.WaitGroup
	for w := range queues {
		queue := fmt.Sprintf("w%d", w)
		wg.Go(func() {
			var posted []string
			for i := range events {
				var (
					typ     = hlog.MessagesPosted
					payload any
				)
				switch {
				case i%7 == 6 && len(posted) > 0:
					typ, payload = hlog.MessageDeleted, &hlog.MessageDeletedV1{ID: posted[i%len(posted)]}
				case i%5 == 4:
					typ, payload = hlog.ClaimCreated, &hlog.ClaimCreatedV1{TTL: 30, Grace: 30, Limit: 3}
				default:
					payload = &hlog.MessagesPostedV1{Messages: []hlog.PostedMessage{
						{TTL: 600, Body: []byte(fmt.Sprint(i))}, {TTL: 60, Body: []byte(`"short"`)},
					}}
				}
				ev, err := hlog.NewEvent(typ, dlProject, queue, t0+int64(i)*int64(time.Second)+int64(w), payload)
				if err != nil {
					t.Error(err)
					return
				}
				rec, err := ev.Record()
				if err == nil {
					err = l.Append(context.Background(), rec)
				}
				if err != nil {
					t.Error(err)
					return
				}
				if typ == hlog.MessagesPosted {
					posted = append(posted, PositionID(rec.Partition, rec.Offset, 0))
				}
			}
		})
	}
	wg.Wait()
}

// snapshotDigest opens the projection of snapshot snap read-only and
// returns its digest.
func snapshotDigest(t *testing.T, dir string, snap *SnapshotInfo) string {
	t.Helper()
	s, err := OpenStoreReadOnly(filepath.Join(dir, snap.Name, snapshotDBDir), quietSlog)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return digestOf(t, s)
}

// TestSnapshotOfLiveProjection snapshots a live projection while events
// are appended and applied, restores the snapshot and replays the rest of
// the log into it.
func TestSnapshotOfLiveProjection(t *testing.T) {
	l := dlOpenLog(t)
	live := dlStart(t, l)
	ctx := dlContext(t)
	const queues, events = 8, 80 // w0 to w7 fall on every partition
	watched := hlog.PartitionFor(hlog.QueueKey(dlProject, "w0"), dlPartitions)

	dir := t.TempDir()
	var (
		snaps   []*SnapshotInfo
		digests []string
	)
	written := make(chan struct{})
	go func() {
		defer close(written)
		postConcurrently(t, l, queues, events)
	}()
	waits := []int64{30, 120}
	for _, off := range waits {
		// Snapshots while the writers write and the projector applies.
		if err := live.proj.WaitApplied(ctx, watched, off); err != nil {
			t.Fatal(err)
		}
		info, err := TakeSnapshot(live.store, dir, l.Partitions())
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, info)
		digests = append(digests, snapshotDigest(t, dir, info))
	}
	<-written
	final := live.capture(0)
	full := digestOf(t, rebuiltStore(t, l))
	if full != final.digest {
		t.Fatalf("full rebuild digest %s, live %s", full, final.digest)
	}

	for i, snap := range snaps {
		t.Run(fmt.Sprintf("snapshot %d", i), func(t *testing.T) {
			if snap.Partitions != dlPartitions || len(snap.Applied) != dlPartitions || snap.Applied[watched] <= waits[i] {
				t.Fatalf("snapshot %+v, want %d partitions with partition %d applied past %d", snap, dlPartitions, watched, waits[i])
			}
			for p, off := range snap.Applied {
				if off > final.ends[p] {
					t.Fatalf("partition %d: snapshot applied to %d, past the log's end %d", p, off, final.ends[p])
				}
			}
			// The snapshot is the state at its applied offsets, exactly.
			at, _ := rebuilt(t, l, RebuildOptions{Until: snap.Applied})
			if d := digestOf(t, at); d != digests[i] {
				t.Fatalf("snapshot digest %s, rebuild up to its applied offsets %s", digests[i], d)
			}

			restored := filepath.Join(t.TempDir(), "projection")
			if err := RestoreSnapshot(dir, *snap, restored); err != nil {
				t.Fatal(err)
			}
			if !HasProjection(restored) {
				t.Fatal("restored directory holds no projection")
			}
			s, err := Open(restored, quietSlog)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for p, want := range snap.Applied {
				if got, err := s.Applied(int32(p)); err != nil || got != want {
					t.Fatalf("partition %d: restored applied %d (err %v), snapshot %d", p, got, err, want)
				}
			}
			if d := digestOf(t, s); d != digests[i] {
				t.Fatalf("restored digest %s, snapshot %s", d, digests[i])
			}
			// Start-up from the snapshot: replay the rest of the log.
			info, err := Rebuild(ctx, l, s, RebuildOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(info.Applied, final.ends) {
				t.Fatalf("restored projection applied to %v, log ends at %v", info.Applied, final.ends)
			}
			if d := digestOf(t, s); d != full {
				t.Fatalf("restored and replayed digest %s, full replay %s", d, full)
			}
			// Rewrite the restored projection's files; the snapshot's stay.
			if err := s.db.Compact(ctx, []byte{0}, []byte{0xff}, false); err != nil {
				t.Fatal(err)
			}
			if d := snapshotDigest(t, dir, snap); d != digests[i] {
				t.Fatalf("snapshot digest %s after the restored projection moved on, %s before", d, digests[i])
			}
		})
	}
}

// TestListAndPruneSnapshots lists snapshots among what else a snapshot
// directory may hold and prunes them.
func TestListAndPruneSnapshots(t *testing.T) {
	s := newStore(t)
	dir := filepath.Join(t.TempDir(), "snapshots")
	if got, err := ListSnapshots(dir); err != nil || got != nil {
		t.Fatalf("missing directory: %v (err %v), want none", got, err)
	}
	var names []string
	for i := range 3 {
		if err := s.db.Set(appliedKey(0), appendU64(nil, uint64(i+1)), pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		info, err := TakeSnapshot(s, dir, 1)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(info.Applied, []int64{int64(i + 1)}) {
			t.Fatalf("snapshot %d applied %v, want [%d]", i, info.Applied, i+1)
		}
		names = append([]string{info.Name}, names...) // newest first
	}
	// What a crash during a snapshot and other hands leave behind.
	junk := map[string]string{
		snapshotTmp + "20990101T000000.000000000Z/" + snapshotInfoFile: `{"name":"` + snapshotTmp + `20990101T000000.000000000Z"}`,
		"20980101T000000.000000000Z/" + snapshotInfoFile:               `{"name":"another name"}`,
		"20970101T000000.000000000Z/" + snapshotInfoFile:               `not json`,
		"20960101T000000.000000000Z/projection/CURRENT":                ``,
		"notes.txt": `not a snapshot`,
	}
	for name, content := range junk {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	list := func() []string {
		t.Helper()
		snaps, err := ListSnapshots(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range snaps {
			out = append(out, s.Name)
		}
		return out
	}
	if got := list(); !slices.Equal(got, names) {
		t.Fatalf("listed %v, want %v", got, names)
	}

	if err := PruneSnapshots(dir, 2); err != nil {
		t.Fatal(err)
	}
	if got := list(); !slices.Equal(got, names[:2]) {
		t.Fatalf("after keeping 2: %v, want %v", got, names[:2])
	}
	for name := range junk {
		_, err := os.Stat(filepath.Join(dir, name))
		if gone := os.IsNotExist(err); gone != strings.HasPrefix(name, snapshotTmp) {
			t.Errorf("%s: removed %v, want removed only for an interrupted snapshot (err %v)", name, gone, err)
		}
	}
	if err := PruneSnapshots(dir, 0); err != nil {
		t.Fatal(err)
	}
	if got := list(); len(got) != 0 {
		t.Fatalf("after keeping none: %v", got)
	}
}

// TestRestoreSnapshotRefusesExisting restores only into a new directory,
// leaving whatever is there alone.
func TestRestoreSnapshotRefusesExisting(t *testing.T) {
	s := newStore(t)
	dir := t.TempDir()
	snap, err := TakeSnapshot(s, dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		make func(path string) error
	}{
		{"directory", func(path string) error {
			if err := os.Mkdir(path, 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(path, "keep"), []byte("x"), 0o644)
		}},
		{"file", func(path string) error { return os.WriteFile(path, []byte("x"), 0o644) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "projection")
			if err := c.make(path); err != nil {
				t.Fatal(err)
			}
			if err := RestoreSnapshot(dir, *snap, path); err == nil {
				t.Fatal("restored over an existing path")
			}
			if HasProjection(path) {
				t.Fatal("a projection was restored into the existing path")
			}
			parent, err := os.ReadDir(filepath.Dir(path))
			if err != nil {
				t.Fatal(err)
			}
			if len(parent) != 1 {
				t.Fatalf("restore left %d entries beside the existing path", len(parent)-1)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, snap.Name, snapshotInfoFile)); err != nil {
		t.Fatalf("snapshot damaged: %v", err)
	}
}
