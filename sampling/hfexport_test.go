package sampling

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestTransformersStrictRules: genkit's mirror of transformers'
// validate(strict=True) names the same fields as transformers itself on 28
// configs (sampling/testdata/hf_strict.json, made by
// scripts/reference/make_genconfig_refs.py): 11 accepted, the rest
// rejected. ForTransformers then yields a config the rules accept, keeping
// every field they do not name.
func TestTransformersStrictRules(t *testing.T) {
	var ref struct {
		Cases []struct {
			Config json.RawMessage `json:"config"`
			OK     bool            `json:"ok"`
			Fields []string        `json:"fields"`
		} `json:"cases"`
	}
	data, err := os.ReadFile(filepath.Join("testdata", "hf_strict.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	accepted, rejected := 0, 0
	for i, c := range ref.Cases {
		cfg := &GenerationConfig{}
		if err := cfg.Merge(c.Config); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		var got []string
		for f := range cfg.TransformersIssues() {
			got = append(got, f)
		}
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(c.Fields, ",") || (len(got) == 0) != c.OK {
			t.Errorf("case %d %s: genkit names %v, transformers %v (ok %v)", i, c.Config, got, c.Fields, c.OK)
		}
		if c.OK {
			accepted++
		} else {
			rejected++
		}
		clean, dropped := cfg.ForTransformers()
		if issues := clean.TransformersIssues(); len(issues) > 0 {
			t.Errorf("case %d: the cleaned config still has issues %v", i, issues)
		}
		if len(dropped) != len(c.Fields) {
			t.Errorf("case %d: dropped %v, transformers named %v", i, dropped, c.Fields)
		}
	}
	if accepted < 5 || rejected < 10 {
		t.Fatalf("%d accepted, %d rejected cases: too few of one kind", accepted, rejected)
	}

	greedy := &GenerationConfig{DoSample: Ptr(false), Temperature: Ptr(0.7), TopK: Ptr(20), RepetitionPenalty: Ptr(1.2),
		MaxNewTokens: Ptr(16), Seed: Ptr(uint64(3)), FrequencyPenalty: Ptr(0.5)}
	clean, dropped := greedy.ForTransformers()
	if clean.Temperature != nil || clean.TopK != nil || clean.Seed != nil || clean.FrequencyPenalty != nil {
		t.Fatalf("cleaned greedy config keeps a dropped field: %+v", clean)
	}
	if clean.RepetitionPenalty == nil || *clean.RepetitionPenalty != 1.2 || *clean.MaxNewTokens != 16 || len(dropped) != 4 {
		t.Fatalf("cleaned greedy config %+v, dropped %v", clean, dropped)
	}
	if greedy.Temperature == nil {
		t.Fatal("ForTransformers changed its receiver")
	}
}
