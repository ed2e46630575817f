package cli

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/steering"
	"github.com/spf13/cobra"
)

func newLogitsCmd() *cobra.Command {
	var mf modelFlags
	var gf genFlags
	var sf steerFlags
	var tokens string
	var all, asJSON, processed bool
	cmd := &cobra.Command{
		Use:   "logits --tokens 1,2,3 [--all-positions] --json",
		Short: "Print the model's logits for a token sequence",
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := mf.load()
			if err != nil {
				return err
			}
			defer freeModel(m)
			ids, err := parseTokens(tokens, m.Config.VocabSize)
			if err != nil {
				return err
			}
			rows, err := logitsRows(m, ids, all, nil)
			if err != nil {
				return err
			}
			plan, err := sf.apply(nil)
			if err == nil {
				plan, err = sf.forModel(plan, m)
			}
			if err != nil {
				return err
			}
			if plan != nil {
				r, err := steering.Resolve(cmd.Context(), m, *plan, func(done, total int) { progress("computing the "+plan.Source()+" vector", done, total) })
				if err != nil {
					return flagError(err)
				}
				st, err := r.Build(m, nil)
				if err != nil {
					return err
				}
				defer st.Close()
				var steered [][]float32
				if st.Injection != nil {
					if steered, err = logitsRows(m, ids, all, st.Injection); err != nil {
						return err
					}
				} else {
					for _, r := range rows {
						row := append([]float32(nil), r...)
						st.Bias.Process(&sampling.Lane{IDs: ids, PromptLen: len(ids)}, row)
						steered = append(steered, row)
					}
				}
				if asJSON {
					return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"logits": jsonRows(rows), "steered": jsonRows(steered)})
				}
				rows = steered
			}
			if processed {
				cfg, err := gf.build(m, nil)
				if err != nil {
					return err
				}
				probs := processedProbs(cfg, ids, rows[len(rows)-1])
				if asJSON {
					return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"probs": probs})
				}
				fmt.Fprintf(cmd.OutOrStdout(), "processors: %v\n", sampling.BuildChain(cfg, cfg.EOSTokenID, len(ids)).Names())
				return nil
			}
			if !asJSON {
				for i, r := range rows {
					best := 0
					for j := range r {
						if r[j] > r[best] {
							best = j
						}
					}
					fmt.Fprintf(cmd.OutOrStdout(), "position %d: argmax %d (%.4f)\n", i, best, r[best])
				}
				return nil
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"logits": jsonRows(rows)})
		},
	}
	mf.register(cmd.Flags())
	cmd.Flags().StringVar(&tokens, "tokens", "", "comma-separated token ids")
	cmd.Flags().BoolVar(&all, "all-positions", false, "print every position, not only the last")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&processed, "processed", false, "print the next-token distribution after the whole processor chain")
	gf.register(cmd.Flags())
	sf.register(cmd.Flags())
	_ = cmd.MarkFlagRequired("tokens")
	return cmd
}

// logitsRows returns the logits per position; with hook, those of the
// steered lane of a base+steered pair.
func logitsRows(m *engine.Model, ids []int, all bool, hook engine.Hook) ([][]float32, error) {
	if hook == nil {
		lanes, err := m.Logits(ids, 1, all, nil)
		if err != nil {
			return nil, err
		}
		return lanes[0], nil
	}
	lanes, err := m.Logits(ids, 2, all, hook)
	if err != nil {
		return nil, err
	}
	return lanes[1], nil
}

// processedProbs runs the chain of cfg on the last position's logits (the
// prompt is the whole history) and returns softmax probabilities.
func processedProbs(cfg *sampling.GenerationConfig, ids []int, logits []float32) []float64 {
	scores := append([]float32(nil), logits...)
	sampling.BuildChain(cfg, cfg.EOSTokenID, len(ids)).Process(&sampling.Lane{IDs: ids, PromptLen: len(ids)}, scores)
	return sampling.Softmax(scores)
}

// jsonRows converts rows to JSON-safe values (NaN and Inf are not JSON).
func jsonRows(rows [][]float32) [][]any {
	out := make([][]any, len(rows))
	for i, r := range rows {
		out[i] = make([]any, len(r))
		for j, v := range r {
			switch {
			case math.IsNaN(float64(v)):
				out[i][j] = "NaN"
			case math.IsInf(float64(v), 1):
				out[i][j] = "Infinity"
			case math.IsInf(float64(v), -1):
				out[i][j] = "-Infinity"
			default:
				out[i][j] = v
			}
		}
	}
	return out
}
