package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// TestWriteReplacesAndCleansUp: a write replaces the file with the given
// permissions and leaves nothing else; a failing write keeps the old file
// and removes its temporary file.
func TestWriteReplacesAndCleansUp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s.json")
	if err := Write(p, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "two" {
		t.Fatalf("content %q", b)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	boom := errors.New("boom")
	err := WriteWith(p, ".gguf", 0o644, func(tmp string) error {
		if filepath.Ext(tmp) != ".gguf" || !IsTemp(filepath.Base(tmp)) {
			t.Errorf("temporary name %s", tmp)
		}
		os.WriteFile(tmp, []byte("partial"), 0o644)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("failing write: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "two" {
		t.Fatalf("a failed write changed the file to %q", b)
	}
	if got := names(t, dir); len(got) != 1 || got[0] != "s.json" {
		t.Fatalf("left behind: %v", got)
	}
	// A write into a missing directory's file fails naming the path.
	if err := Write(filepath.Join(p, "x"), nil, 0o644); err == nil {
		t.Fatal("a write under a file accepted")
	}
}

// TestCleanStale: only this package's temporary files older than
// StaleAfter go; young ones (a write in progress) and other files stay.
func TestCleanStale(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * StaleAfter)
	files := map[string]bool{ // name -> removed
		".s.json.123456.tmp":          true,
		".v.gguf.987.tmp.gguf":        true,
		".young.json.42.tmp":          false,
		"s.json":                      false,
		"notes.tmp":                   false,
		".hidden":                     false,
		".s.json.abc.tmp":             false,
		".generation_config-123.json": false,
	}
	for name := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if name != ".young.json.42.tmp" {
			os.Chtimes(p, old, old)
		}
	}
	removed, err := CleanStale(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(removed)
	if len(removed) != 2 || removed[0] != ".s.json.123456.tmp" || removed[1] != ".v.gguf.987.tmp.gguf" {
		t.Fatalf("removed %v", removed)
	}
	for name, gone := range files {
		_, err := os.Stat(filepath.Join(dir, name))
		if gone != os.IsNotExist(err) {
			t.Errorf("%s: removed %v, want %v", name, os.IsNotExist(err), gone)
		}
	}
}

// TestFirstWriteCleansTheDirectory: the first write into a directory
// removes a killed writer's stale temporary file.
func TestFirstWriteCleansTheDirectory(t *testing.T) {
	dir := t.TempDir()
	orphan := filepath.Join(dir, ".s.json.555.tmp")
	os.WriteFile(orphan, []byte("half"), 0o600)
	old := time.Now().Add(-2 * StaleAfter)
	os.Chtimes(orphan, old, old)
	if err := Write(filepath.Join(dir, "s.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatalf("stale temporary file kept: %v", err)
	}
}
