package sessions_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/sessions"
	"github.com/mlx-genkit/genkit/steering"
)

func sample() *sessions.Session {
	return &sessions.Session{Name: "pirate-tuning", Model: "HuggingFaceTB/SmolLM2-135M-Instruct", Prompt: "Tell me about the sea.\nBriefly.",
		System: "Be kind.", Chat: true,
		Steering: steering.Plan{Preset: "pirate", Method: "mean", Layer: sampling.Ptr(15), Alpha: sampling.Ptr(1.3),
			Schedule: steering.Schedule{Kind: "warmup", Steps: 8}, Mode: "residual", Scope: "generated"},
		Generation: sampling.GenerationConfig{DoSample: sampling.Ptr(true), Temperature: sampling.Ptr(0.8), TopP: sampling.Ptr(0.9), Seed: sampling.Ptr(uint64(7)), MaxNewTokens: sampling.Ptr(48)},
		Base:       "The sea is big.", Steered: "Arr, the sea be big."}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	t.Setenv("GENKIT_DATA_DIR", t.TempDir())
	s := sample()
	if err := sessions.Save(s); err != nil {
		t.Fatal(err)
	}
	back, err := sessions.Load("pirate-tuning")
	if err != nil {
		t.Fatal(err)
	}
	if back.Version != sessions.Version || back.Prompt != s.Prompt || !reflect.DeepEqual(back.Steering, s.Steering) || back.Generation.Temp() != 0.8 ||
		*back.Generation.Seed != 7 || back.Steered != s.Steered || back.Saved.IsZero() {
		t.Fatalf("round trip: %+v", back)
	}
	list, err := sessions.List()
	if err != nil || len(list) != 1 || list[0].Name != "pirate-tuning" {
		t.Fatalf("list: %+v %v", list, err)
	}
	dir, _ := sessions.Dir()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestBadSessionsAreRefusedClearly(t *testing.T) {
	t.Setenv("GENKIT_DATA_DIR", t.TempDir())
	dir, _ := sessions.Dir()
	os.MkdirAll(dir, 0o755)
	for name, body := range map[string]string{
		"truncated": `{"version": 1, "name": "truncated", "prompt": "hi`,
		"noversion": `{"name": "noversion"}`,
		"future":    `{"version": 99, "name": "future"}`,
		"badtemp":   `{"version": 2, "name": "badtemp", "steering": {"preset": "pirate"}, "generation": {"do_sample": true, "temperature": 0}}`,
		"badmode":   `{"version": 2, "name": "badmode", "steering": {"preset": "pirate", "mode": "sideways"}}`,
		"badmodev1": `{"version": 1, "name": "badmodev1", "steering": {"preset": "pirate", "layer": -1, "alpha": 1, "schedule": "constant", "mode": "sideways", "scope": "all"}}`,
		"badsched":  `{"version": 1, "name": "badsched", "steering": {"preset": "pirate", "layer": -1, "alpha": 1, "schedule": "ramp:1", "mode": "residual", "scope": "all"}}`,
		"nosource":  `{"version": 2, "name": "nosource", "steering": {"mode": "residual"}}`,
	} {
		os.WriteFile(filepath.Join(dir, name+".json"), []byte(body), 0o644)
		_, err := sessions.Load(name)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := sessions.Save(&sessions.Session{Name: "../escape"}); err == nil {
		t.Error("a path-like session name was accepted")
	}
	list, err := sessions.List()
	if err != nil || len(list) != 8 {
		t.Fatalf("list with broken sessions: %d, %v", len(list), err)
	}
	for _, s := range list {
		if s.Err == nil {
			t.Errorf("%s listed without its error", s.Name)
		}
	}
}

// TestFailedSaveKeepsThePreviousFile: a save that cannot complete (here the
// final rename is impossible) returns an error, leaves the saved session as
// it was and no temporary file; a stale temporary file of a killed save is
// removed by the next save, a young one (a save in progress) is kept.
func TestFailedSaveKeepsThePreviousFile(t *testing.T) {
	t.Setenv("GENKIT_DATA_DIR", t.TempDir())
	s := sample()
	s.Name = "keep"
	if err := sessions.Save(s); err != nil {
		t.Fatal(err)
	}
	dir, err := sessions.Dir()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "keep.json")
	first, _ := os.ReadFile(path)
	blocker := filepath.Join(dir, "blocked.json")
	os.MkdirAll(filepath.Join(blocker, "child"), 0o755) // a non-empty directory: rename over it fails
	b := sample()
	b.Name = "blocked"
	if err := sessions.Save(b); err == nil {
		t.Fatal("rename over a directory succeeded")
	}
	if got, _ := os.ReadFile(path); string(got) != string(first) {
		t.Fatalf("previous file changed: %q", got)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Fatalf("temporary file left: %s", e.Name())
		}
	}
}

// TestBadFieldIsNamed: a session with a bad steering field is refused with
// the field's name, so the user knows what to fix.
func TestBadFieldIsNamed(t *testing.T) {
	t.Setenv("GENKIT_DATA_DIR", t.TempDir())
	dir, _ := sessions.Dir()
	os.MkdirAll(dir, 0o755)
	for name, want := range map[string]string{
		`{"version": 2, "name": "x", "steering": {"preset": "pirate", "mode": "sideways"}}`:           "steering.mode",
		`{"version": 2, "name": "x", "steering": {"preset": "pirate", "scope": "everywhere"}}`:        "steering.scope",
		`{"version": 2, "name": "x", "steering": {"preset": "pirate", "method": "median"}}`:           "steering.method",
		`{"version": 2, "name": "x", "steering": {"preset": "nobody"}}`:                               "steering.preset",
		`{"version": 2, "name": "x", "steering": {"preset": "pirate", "vector": "v.gguf"}}`:           "not both",
		`{"version": 2, "name": "x", "steering": {"preset": "pirate", "schedule": "warmup:0"}}`:       "schedule",
		`{"version": 2, "name": "x", "steering": {"preset": "pirate", "schedule": {"kind": "spin"}}}`: "steering.schedule",
	} {
		os.WriteFile(filepath.Join(dir, "x.json"), []byte(name), 0o644)
		_, err := sessions.Load("x")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error naming %s", name, err, want)
		}
	}
}

// TestVersion1IsMigrated: a version-1 session (the TUI wrote layer -1 for
// auto, the schedule as a string) opens as a plan with the same meaning, and
// saves as the current version.
func TestVersion1IsMigrated(t *testing.T) {
	t.Setenv("GENKIT_DATA_DIR", t.TempDir())
	dir, _ := sessions.Dir()
	os.MkdirAll(dir, 0o755)
	v1 := `{"version": 1, "name": "old", "model": "m", "prompt": "Hi", "chat": true,
  "steering": {"preset": "pirate", "method": "pca", "layer": -1, "alpha": 2.5, "schedule": "ramp:0:2:16", "mode": "logit-bias", "scope": "generated"},
  "generation": {"do_sample": false, "max_new_tokens": 32}, "saved": "2026-11-20T10:00:00Z"}`
	fixed := `{"version": 1, "name": "fixed", "steering": {"preset": "pirate", "layer": 12, "alpha": 1, "schedule": "constant", "mode": "residual", "scope": "all"}}`
	os.WriteFile(filepath.Join(dir, "old.json"), []byte(v1), 0o644)
	os.WriteFile(filepath.Join(dir, "fixed.json"), []byte(fixed), 0o644)
	s, err := sessions.Load("old")
	if err != nil {
		t.Fatal(err)
	}
	want := steering.Plan{Preset: "pirate", Method: "pca", Alpha: sampling.Ptr(2.5), Schedule: steering.Schedule{Kind: "ramp", From: 0, To: 2, Steps: 16},
		Mode: "logit-bias", Scope: "generated"}
	if !reflect.DeepEqual(s.Steering, want) || s.Prompt != "Hi" || *s.Generation.MaxNewTokens != 32 {
		t.Fatalf("migrated: %+v", s.Steering)
	}
	f, err := sessions.Load("fixed")
	if err != nil || f.Steering.Layer == nil || *f.Steering.Layer != 12 {
		t.Fatalf("a fixed layer was not kept: %+v %v", f, err)
	}
	if err := sessions.Save(s); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "old.json"))
	if !strings.Contains(string(data), `"version": 2`) || !strings.Contains(string(data), `"schedule": "ramp:0:2:16"`) || strings.Contains(string(data), `"layer"`) {
		t.Fatalf("saved form:\n%s", data)
	}
}

// TestListRemovesStaleTemporaryFiles: listing the sessions removes a
// killed save's temporary file older than a minute and keeps a young one
// and the sessions.
func TestListRemovesStaleTemporaryFiles(t *testing.T) {
	t.Setenv("GENKIT_DATA_DIR", t.TempDir())
	if err := sessions.Save(sample()); err != nil {
		t.Fatal(err)
	}
	dir, _ := sessions.Dir()
	stale, young := filepath.Join(dir, ".pirate-tuning.json.4242.tmp"), filepath.Join(dir, ".pirate-tuning.json.77.tmp")
	os.WriteFile(stale, []byte("{"), 0o600)
	os.WriteFile(young, []byte("{"), 0o600)
	old := time.Now().Add(-2 * time.Minute)
	os.Chtimes(stale, old, old)
	list, err := sessions.List()
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v, %v", list, err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temporary file kept: %v", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("young temporary file removed: %v", err)
	}
}

// TestSessionTextIsNotReplacedSilently: a session whose prompt holds invalid
// UTF-8 or a lone surrogate escape is refused naming the byte offset (the
// JSON decoder would hand the model U+FFFD instead); a surrogate pair loads.
func TestSessionTextIsNotReplacedSilently(t *testing.T) {
	t.Setenv("GENKIT_DATA_DIR", t.TempDir())
	dir, _ := sessions.Dir()
	os.MkdirAll(dir, 0o755)
	for name, tc := range map[string]struct {
		body, want string
	}{
		"badutf8":   {"{\"version\": 2, \"name\": \"badutf8\", \"prompt\": \"caf\xe9\", \"steering\": {\"preset\": \"pirate\"}}", "invalid UTF-8 at byte 48"},
		"surrogate": {`{"version": 2, "name": "surrogate", "prompt": "a\ud800b", "steering": {"preset": "pirate"}}`, "surrogate (\\ud800) at byte offset 48"},
		"pair":      {`{"version": 2, "name": "pair", "prompt": "a\ud83d\ude00b", "steering": {"preset": "pirate"}}`, ""},
	} {
		os.WriteFile(filepath.Join(dir, name+".json"), []byte(tc.body), 0o644)
		s, err := sessions.Load(name)
		if tc.want == "" {
			if err != nil || s.Prompt != "a\U0001F600b" {
				t.Errorf("%s: %v, prompt %q", name, err, s.Prompt)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error naming %q", name, err, tc.want)
		}
	}
}
