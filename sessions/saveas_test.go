package sessions_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlx-genkit/genkit/sessions"
)

// TestSaveAsRefusesAnExistingName: save-as writes a new session under the
// new name, refuses a name already saved (ErrExists, the saved one
// untouched) and, when told to replace it, keeps the replaced one aside
// (nothing saved is lost) and leaves it out of the list.
func TestSaveAsRefusesAnExistingName(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GENKIT_DATA_DIR", dir)
	a := sample()
	a.Prompt = "first"
	if err := sessions.SaveAs(a, "first", false); err != nil {
		t.Fatal(err)
	}
	b := sample()
	b.Prompt = "second"
	err := sessions.SaveAs(b, "first", false)
	if !errors.Is(err, sessions.ErrExists) {
		t.Fatalf("save-as over a saved session: %v, want ErrExists", err)
	}
	if got, _ := sessions.Load("first"); got.Prompt != "first" {
		t.Fatalf("the refused save-as changed the saved session: %q", got.Prompt)
	}
	if err := sessions.SaveAs(b, "first", true); err != nil {
		t.Fatal(err)
	}
	if got, _ := sessions.Load("first"); got.Prompt != "second" || got.Name != "first" {
		t.Fatalf("replace: %q %q", got.Prompt, got.Name)
	}
	kept, _ := filepath.Glob(filepath.Join(dir, "sessions", ".replaced", "first.*.json"))
	if len(kept) != 1 {
		t.Fatalf("the replaced session was not kept: %v", kept)
	}
	if old, err := sessions.LoadFile(kept[0]); err != nil || old.Prompt != "first" {
		t.Fatalf("the kept session: %v %v", old, err)
	}
	list, err := sessions.List()
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	if err := sessions.SaveAs(sample(), "../escape", false); err == nil {
		t.Fatal("an unsafe name was accepted")
	}
}

// TestRename: the session moves to the new name (the name inside too), the
// old file goes only after the new one is written, and a taken name is
// refused unless replace is set.
func TestRename(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GENKIT_DATA_DIR", dir)
	for _, n := range []string{"a", "b"} {
		s := sample()
		s.Prompt = n
		if err := sessions.SaveAs(s, n, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := sessions.Rename("a", "b", false); !errors.Is(err, sessions.ErrExists) {
		t.Fatalf("rename onto a saved session: %v, want ErrExists", err)
	}
	if err := sessions.Rename("a", "c", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sessions", "a.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the old name is still there: %v", err)
	}
	c, err := sessions.Load("c")
	if err != nil || c.Name != "c" || c.Prompt != "a" {
		t.Fatalf("renamed: %+v %v", c, err)
	}
	if err := sessions.Rename("c", "b", true); err != nil {
		t.Fatal(err)
	}
	if b, _ := sessions.Load("b"); b.Prompt != "a" {
		t.Fatalf("rename with replace: %q", b.Prompt)
	}
	if kept, _ := filepath.Glob(filepath.Join(dir, "sessions", ".replaced", "b.*.json")); len(kept) != 1 {
		t.Fatalf("the replaced b was not kept: %v", kept)
	}
	if err := sessions.Rename("missing", "d", false); err == nil {
		t.Fatal("renaming a missing session succeeded")
	}
}
