package sampling_test

import (
	"context"
	"fmt"
	"math"
	"testing"

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
		beams, err := sampling.BeamSearch(context.Background(), m, b.Prompt, cfg, ref.EOS, nil)
		if err != nil {
			t.Fatal(err)
		}
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
