package quality

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"
)

type labelled struct {
	Instruction string `json:"instruction"`
	Lines       []struct {
		Source string   `json:"source"`
		Text   string   `json:"text"`
		Bad    []Reason `json:"bad"`
	} `json:"lines"`
}

// TestLabelledSet: every bad line is flagged with exactly its labelled
// reasons, no good line (plain and persona rewrites) is flagged, and every
// reason the detector knows is exercised by some bad line.
func TestLabelledSet(t *testing.T) {
	data, err := os.ReadFile("testdata/labelled.json")
	if err != nil {
		t.Fatal(err)
	}
	var set labelled
	if err := json.Unmarshal(data, &set); err != nil {
		t.Fatal(err)
	}
	covered := map[Reason]bool{}
	good, bad := 0, 0
	for _, l := range set.Lines {
		got := Suspect(l.Text, Check{Source: l.Source, Instruction: set.Instruction})
		if fmt.Sprint(got) != fmt.Sprint(l.Bad) && !(len(got) == 0 && len(l.Bad) == 0) {
			t.Errorf("%q: reasons %v, labelled %v", l.Text, got, l.Bad)
		}
		for _, r := range l.Bad {
			covered[r] = true
		}
		if len(l.Bad) == 0 {
			good++
		} else {
			bad++
		}
	}
	for _, r := range []Reason{CharRun, WordRun, WordSoup, NgramLoop, Language, EmojiSpam, SymbolSpam, DigitNoise, LatexNoise,
		Empty, Truncated, TemplateToken, InstructionEcho} {
		if !covered[r] {
			t.Errorf("no labelled bad line for %s", r)
		}
	}
	if good < 10 || bad < 20 {
		t.Errorf("labelled set too small: %d good, %d bad lines", good, bad)
	}
}

// TestKept: content survives a faithful rewrite, mostly not an unrelated
// line, and numbers must match exactly.
func TestKept(t *testing.T) {
	src := "Texaco said it will sell its refinery in Texas to Shell for 300 mln dlrs."
	for _, c := range []struct {
		text   string
		lo, hi float64
	}{
		{"Texaco will sell its Texas refinery to Shell for 300 mln dlrs.", 0.99, 1},
		{"Ahoy, Texaco be sellin' its Texas refinery to Shell fer 300 mln dlrs, arr!", 0.99, 1},
		{"Texaco will sell its Texas refinery to Shell for 200 mln dlrs.", 0.8, 0.95},
		{"The weather was lovely and the crew sang songs all night.", 0, 0.01},
		{"", 0, 0},
	} {
		if k := Kept(src, c.text); k < c.lo || k > c.hi {
			t.Errorf("Kept(%q) = %.3f, want in [%g, %g]", c.text, k, c.lo, c.hi)
		}
	}
	if k := Kept("", "anything"); k != 1 {
		t.Errorf("a source with no content keeps %g, want 1", k)
	}
}

// TestMarkerRate counts whole words and phrases only.
func TestMarkerRate(t *testing.T) {
	m := []string{"arr", "matey", "shiver me timbers"}
	if r := MarkerRate("Arr, matey! Shiver me timbers.", m); math.Abs(r-1) > 1e-9 {
		t.Errorf("all markers: %g, want 1", r)
	}
	if r := MarkerRate("The market rally carried on.", m); r != 0 {
		t.Errorf("no markers (arr inside carried): %g", r)
	}
	if r := MarkerRate("arr the ship is late", m); math.Abs(r-0.2) > 1e-9 {
		t.Errorf("one in five: %g", r)
	}
}
