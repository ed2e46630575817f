package sampling_test

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/sampling"
)

// TestBeamSearchMatchesHF compares sequences and scores with transformers'
// beam search on the tiny model, for three settings of num_beams,
// length_penalty, early_stopping and num_return_sequences.
func TestBeamSearchMatchesHF(t *testing.T) {
	ref := loadRef(t)
	m := tinyModel(t)
	for i, b := range ref.Beams {
		cfg := &sampling.GenerationConfig{}
		if err := cfg.Merge(b.Config); err != nil {
			t.Fatal(err)
		}
		cfg.MaxNewTokens = sampling.Ptr(10)
		bs, err := sampling.NewBeamSearch(cfg, ref.EOS, len(b.Prompt))
		if err != nil {
			t.Fatal(err)
		}
		res, _, err := m.Generate(context.Background(), engine.Request{Prompt: b.Prompt, Lanes: cfg.Beams(),
			MaxNewTokens: cfg.MaxNew(len(b.Prompt)), Chooser: bs})
		if err != nil {
			t.Fatal(err)
		}
		if !bs.Done() || res[0].Finished != "done" {
			t.Fatalf("case %d: search done %v, lanes finished %q", i, bs.Done(), res[0].Finished)
		}
		beams := bs.Beams()
		if len(beams) != len(b.Sequences) {
			t.Fatalf("case %d: %d beams, HF %d", i, len(beams), len(b.Sequences))
		}
		for j, want := range b.Sequences {
			got := append(append([]int(nil), b.Prompt...), beams[j].Tokens...)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("case %d (%s) beam %d: %v, HF %v", i, b.Config, j, got, want)
			}
			if d := math.Abs(beams[j].Score - b.Scores[j]); d > 1e-4 {
				t.Errorf("case %d beam %d: score %g, HF %g", i, j, beams[j].Score, b.Scores[j])
			}
		}
	}
}
