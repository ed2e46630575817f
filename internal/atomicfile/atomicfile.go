// Package atomicfile is genkit's one way to write a file: through a
// temporary file in the target's directory, synced and renamed over the
// target, so a reader (or a crash) sees the old file or the new one, never
// a part. The temporary file is removed on every failure path, and the
// first write into a directory removes the temporary files that killed
// writers left there (older than StaleAfter, this package's naming only).
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"
)

// StaleAfter is how old a temporary file must be before a writer removes
// it as a killed writer's leftover (a live write finishes well within it).
const StaleAfter = time.Minute

// tempSuffix ends every temporary file's name (before an extension a
// saver needs): ".NAME.<random digits>.tmp[.ext]".
const tempSuffix = ".tmp"

// tempName matches this package's temporary files and nothing else a
// user is likely to keep: a leading dot, the target's name, os.CreateTemp's
// random digits, ".tmp" and an optional short extension.
var tempName = regexp.MustCompile(`^\..+\.[0-9]+\.tmp(\.[A-Za-z0-9]{1,12})?$`)

// IsTemp reports whether name (a base name) is one of this package's
// temporary files.
func IsTemp(name string) bool { return tempName.MatchString(name) }

// Write writes data to path atomically, with permissions perm.
func Write(path string, data []byte, perm os.FileMode) error {
	return WriteWith(path, "", perm, func(tmp string) error {
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return err
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}

// WriteWith writes path atomically through write, which fills the
// temporary file it is given (created empty, its name ending in ext, for
// savers that append an extension otherwise). The result has permissions
// perm. On any failure the temporary file is removed and path is left as
// it was.
func WriteWith(path, ext string, perm os.FileMode, write func(tmp string) error) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	cleanOnce(dir)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*"+tempSuffix+ext)
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := f.Close(); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := write(tmp); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}

var cleaned sync.Map // directory -> struct{}: cleaned in this process

// cleanOnce removes dir's stale temporary files the first time this
// process writes there.
func cleanOnce(dir string) {
	if _, done := cleaned.LoadOrStore(dir, struct{}{}); !done {
		_, _ = CleanStale(dir, time.Now())
	}
}

// CleanStale removes dir's temporary files of this package's naming that
// were last modified before now - StaleAfter, and returns their names.
// Other files, and younger temporary files (a write in progress), are
// left alone.
func CleanStale(dir string, now time.Time) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("clean %s: %w", dir, err)
	}
	var removed []string
	for _, e := range entries {
		if !e.Type().IsRegular() || !IsTemp(e.Name()) {
			continue
		}
		info, err := e.Info()
		if err != nil || now.Sub(info.ModTime()) < StaleAfter {
			continue
		}
		if os.Remove(filepath.Join(dir, e.Name())) == nil {
			removed = append(removed, e.Name())
		}
	}
	return removed, nil
}
