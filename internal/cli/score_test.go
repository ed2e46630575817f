package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestScoreFlagsEveryBadClass runs `genkit score` on the default model over
// the quality package's labelled set: every bad line comes back suspect with
// its labelled reasons, every good line clean, and the measures are there.
func TestScoreFlagsEveryBadClass(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "quality", "testdata", "labelled.json"))
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Lines []struct {
			Source string   `json:"source"`
			Text   string   `json:"text"`
			Bad    []string `json:"bad"`
		} `json:"lines"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var texts, sources []string
	for _, l := range set.Lines {
		texts = append(texts, l.Text)
		sources = append(sources, l.Source)
	}
	lp, sp := filepath.Join(dir, "lines.txt"), filepath.Join(dir, "sources.txt")
	os.WriteFile(lp, []byte(strings.Join(texts, "\n")+"\n"), 0o644)
	os.WriteFile(sp, []byte(strings.Join(sources, "\n")+"\n"), 0o644)
	out, err := run(t, "score", "--preset", "pirate", "--lines", lp, "--source", sp, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Lines []struct {
			Suspect     bool     `json:"suspect"`
			Reasons     []string `json:"reasons"`
			Persona     float64  `json:"persona"`
			PPL         float64  `json:"ppl"`
			PPLRatio    *float64 `json:"ppl_ratio"`
			ContentKept *float64 `json:"content_kept"`
		} `json:"lines"`
		Summary map[string]any `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(rep.Lines) != len(set.Lines) {
		t.Fatalf("%d lines scored, %d given", len(rep.Lines), len(set.Lines))
	}
	classes := map[string]bool{}
	for i, l := range set.Lines {
		got := rep.Lines[i]
		if got.Suspect != (len(l.Bad) > 0) || strings.Join(got.Reasons, ",") != strings.Join(l.Bad, ",") {
			t.Errorf("%q: suspect %v %v, labelled %v", l.Text, got.Suspect, got.Reasons, l.Bad)
		}
		for _, r := range l.Bad {
			classes[r] = true
		}
		if got.PPLRatio == nil || got.ContentKept == nil {
			t.Errorf("%q: no ppl_ratio or content_kept with a source", l.Text)
		}
		if strings.TrimSpace(l.Text) != "" && got.PPL <= 1 {
			t.Errorf("%q: perplexity %g", l.Text, got.PPL)
		}
	}
	if len(classes) < 13 {
		t.Errorf("only %d fault classes exercised", len(classes))
	}
	// Persona strength orders the pirate rewrite above the plain one of
	// the same source line (lines 0 and 1 of the good block).
	pirate, plain := -1, -1
	for i, l := range set.Lines {
		if strings.HasPrefix(l.Text, "Arr, matey, the price") {
			pirate = i
		}
		if strings.HasPrefix(l.Text, "Oil climbed 2 pct") {
			plain = i
		}
	}
	if pirate < 0 || plain < 0 || rep.Lines[pirate].Persona <= rep.Lines[plain].Persona {
		t.Errorf("pirate rewrite persona %g not above the plain rewrite's %g", rep.Lines[pirate].Persona, rep.Lines[plain].Persona)
	}
	if _, err := run(t, "score", "--preset", "pirate", "--lines", lp, "--source", filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing --source file was accepted")
	}
}
