package projection

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Snapshots are Pebble checkpoints of a projection, kept in a directory
// of their own, one subdirectory each:
//
//	<dir>/<name>/projection/     the checkpoint (sstables hard-linked)
//	<dir>/<name>/snapshot.json   SnapshotInfo
//
// A snapshot is written under a temporary name and renamed when complete,
// so a crash never leaves a partial one that looks whole. A node whose
// projection is missing starts from the newest snapshot and replays only
// the log after its applied offsets.

// SnapshotInfo describes a snapshot.
type SnapshotInfo struct {
	Name    string `json:"name"`
	Created string `json:"created"` // RFC 3339
	// Partitions is the partition count of the log it projects.
	Partitions int32 `json:"partitions"`
	// Applied is, per partition, the next offset to apply after it.
	Applied []int64 `json:"applied"`
}

const (
	snapshotInfoFile = "snapshot.json"
	snapshotDBDir    = "projection"
	snapshotTmp      = ".tmp-"
)

// TakeSnapshot checkpoints s into a new snapshot under dir. partitions is
// the partition count of the log s projects.
func TakeSnapshot(s *Store, dir string, partitions int32) (*SnapshotInfo, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	info := &SnapshotInfo{Name: now.Format("20060102T150405.000000000Z"), Created: now.Format(time.RFC3339Nano), Partitions: partitions}
	tmp := filepath.Join(dir, snapshotTmp+info.Name)
	final := filepath.Join(dir, info.Name)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	// The projection is written without a WAL: only flushed memtables
	// reach a checkpoint. Flushes are whole memtables and every batch
	// carries its applied offsets, so a checkpoint is consistent whatever
	// is committed meanwhile; flushing first makes it recent.
	if err := s.db.Flush(); err != nil {
		return nil, err
	}
	db := filepath.Join(tmp, snapshotDBDir)
	if err := s.db.Checkpoint(db); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	applied, err := checkpointApplied(db, partitions)
	if err != nil {
		return nil, err
	}
	info.Applied = applied
	if err := writeJSONFile(filepath.Join(tmp, snapshotInfoFile), info); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return nil, err
	}
	ok = true
	return info, syncDir(dir)
}

// checkpointApplied reads the applied offsets a checkpoint holds.
func checkpointApplied(dir string, partitions int32) ([]int64, error) {
	s, err := OpenStoreReadOnly(dir, nil)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint: %w", err)
	}
	defer s.Close()
	out := make([]int64, partitions)
	for p := range partitions {
		if out[p], err = s.Applied(p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ListSnapshots returns the complete snapshots under dir, newest first
// (none when dir does not exist).
func ListSnapshots(dir string) ([]SnapshotInfo, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []SnapshotInfo
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), snapshotTmp) {
			continue
		}
		var info SnapshotInfo
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), snapshotInfoFile))
		if err != nil || json.Unmarshal(b, &info) != nil || info.Name != e.Name() {
			continue // not a snapshot
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b SnapshotInfo) int { return strings.Compare(b.Name, a.Name) })
	return out, nil
}

// PruneSnapshots deletes all but the keep newest snapshots under dir, and
// what interrupted snapshots left behind.
func PruneSnapshots(dir string, keep int) error {
	snaps, err := ListSnapshots(dir)
	if err != nil {
		return err
	}
	var errs []error
	for i := keep; i < len(snaps); i++ {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, snaps[i].Name)))
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), snapshotTmp) {
			errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
		}
	}
	return errors.Join(errs...)
}

// RestoreSnapshot makes projDir, which must not exist, a copy of the
// snapshot: sstables (immutable) are hard-linked where possible, the
// other files copied, so the snapshot stays intact as the restored
// projection moves on.
func RestoreSnapshot(dir string, snap SnapshotInfo, projDir string) error {
	src := filepath.Join(dir, snap.Name, snapshotDBDir)
	if _, err := os.Stat(projDir); err == nil {
		return fmt.Errorf("restore snapshot: %s exists", projDir)
	}
	tmp := projDir + snapshotTmp + snap.Name
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		os.RemoveAll(tmp)
		return err
	}
	for _, e := range entries {
		from, to := filepath.Join(src, e.Name()), filepath.Join(tmp, e.Name())
		if strings.HasSuffix(e.Name(), ".sst") && os.Link(from, to) == nil {
			continue
		}
		if err := copyFile(from, to); err != nil {
			os.RemoveAll(tmp)
			return err
		}
	}
	if err := os.Rename(tmp, projDir); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return syncDir(filepath.Dir(projDir))
}

// HasProjection reports whether dir holds a projection database.
func HasProjection(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "CURRENT"))
	if err == nil {
		return true
	}
	m, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
	return len(m) > 0
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return errors.Join(out.Sync(), out.Close())
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
