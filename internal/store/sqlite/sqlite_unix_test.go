//go:build unix

package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/signet-id/signet/internal/store/sqlite"
)

// TestFilesArePrivate: the database, its WAL and its shared-memory file are 0600 after writes, with
// a umask of 0 and a world-writable directory, whether the files are new or an earlier run left
// them readable by everyone.
func TestFilesArePrivate(t *testing.T) {
	defer syscall.Umask(syscall.Umask(0))
	ctx := context.Background()
	suffixes := []string{"", "-wal", "-shm"}

	// writeAndCheck opens the store at path, writes, and checks all three files while it is open.
	writeAndCheck := func(t *testing.T, path string) {
		t.Helper()
		s, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for i := range 3 {
			if err := s.PutSetting(ctx, fmt.Sprint("k", i), "v"); err != nil {
				t.Fatal(err)
			}
		}
		if v, err := s.GetSetting(ctx, "k2"); err != nil || v != "v" {
			t.Fatalf("read back %q %v", v, err)
		}
		for _, suffix := range suffixes {
			fi, err := os.Stat(path + suffix)
			if err != nil {
				t.Fatal(err) // the WAL and SHM files must exist while the store is open after writes
			}
			if perm := fi.Mode().Perm(); perm != 0o600 {
				t.Errorf("%s has mode %#o, want 0600", filepath.Base(path+suffix), perm)
			}
		}
	}

	t.Run("new files", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		writeAndCheck(t, filepath.Join(dir, "signet.db"))
	})

	t.Run("files an earlier run left world-readable", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "signet.db")
		// A live store's WAL and SHM, copied while it is open, are what a crash leaves behind.
		s, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.PutSetting(ctx, "before", "crash"); err != nil {
			t.Fatal(err)
		}
		left := map[string][]byte{}
		for _, suffix := range suffixes[1:] {
			if left[suffix], err = os.ReadFile(path + suffix); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
		for _, suffix := range suffixes {
			if b, ok := left[suffix]; ok {
				if err := os.WriteFile(path+suffix, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(path+suffix, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		writeAndCheck(t, path)
	})
}
