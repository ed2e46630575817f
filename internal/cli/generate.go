package cli

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/spf13/cobra"
)

type laneJSON struct {
	Tokens   []int    `json:"tokens"`
	Text     string   `json:"text"`
	Finished string   `json:"finished,omitempty"`
	Score    *float64 `json:"score,omitempty"`
}

func newGenerateCmd() *cobra.Command {
	var mf modelFlags
	var gf genFlags
	var sf steerFlags
	var tokens, prompt, system string
	var chat, ignoreEOS, asJSON bool
	cmd := &cobra.Command{
		Use:   "generate (--tokens 1,2,3 | --prompt TEXT [--chat] [--system TEXT]) [sampling flags] [--json]",
		Short: "Generate a continuation (streamed to the terminal, or as JSON)",
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := mf.load()
			if err != nil {
				return err
			}
			defer freeModel(m)
			ids, err := promptTokens(m, tokens, prompt, chat, system)
			if err != nil {
				return err
			}
			cfg, err := gf.build(m)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			decode := func(t []int) string {
				if m.Tokenizer == nil {
					return ""
				}
				return m.Tokenizer.Decode(t, true)
			}
			if cfg.Beams() > 1 {
				beams, err := sampling.BeamSearch(cmd.Context(), m, ids, cfg, cfg.EOSTokenID, nil)
				if err != nil {
					return err
				}
				var list []laneJSON
				for _, b := range beams {
					list = append(list, laneJSON{Tokens: b.Tokens, Text: decode(b.Tokens), Score: sampling.Ptr(b.Score)})
				}
				if asJSON {
					return json.NewEncoder(out).Encode(map[string]any{"base": list[0], "beams": list})
				}
				for i, b := range list {
					fmt.Fprintf(out, "[beam %d, score %.4f] %s\n", i, *b.Score, b.Text)
				}
				return nil
			}
			if sf.enabled() {
				return generateSteered(cmd, m, ids, cfg, &sf, gf.sharedDraws, ignoreEOS, asJSON, decode)
			}
			sampler, err := sampling.NewSampler(cfg, 1, sampling.SamplerOptions{})
			if err != nil {
				return err
			}
			req := engine.Request{Prompt: ids, Lanes: 1, MaxNewTokens: cfg.MaxNew(len(ids)), IgnoreEOS: ignoreEOS,
				Chooser: sampler, EOS: cfg.EOSTokenID, Deadline: cfg.Deadline(time.Now())}
			if m.Tokenizer != nil {
				req.Stop = sampling.StopStrings(m.Tokenizer, cfg.StopStrings)
			}
			var stream interface{ Add(int) string }
			if !asJSON && m.Tokenizer != nil {
				s := m.Tokenizer.NewStream(true)
				stream = s
				req.OnToken = func(_, id int) { fmt.Fprint(out, s.Add(id)) }
			}
			res, stats, err := m.Generate(cmd.Context(), req)
			if err != nil {
				return err
			}
			base := laneJSON{Tokens: res[0].Tokens, Text: decode(res[0].Tokens), Finished: res[0].Finished}
			if base.Tokens == nil {
				base.Tokens = []int{}
			}
			if asJSON {
				return json.NewEncoder(out).Encode(map[string]any{"base": base, "seed": sampler.Seed()})
			}
			if stream == nil {
				fmt.Fprintln(out, base.Tokens)
				return nil
			}
			fmt.Fprintln(out)
			if stats.Steps > 0 && stats.Decode > 0 {
				warn("%d prompt tokens in %.2fs, %d tokens at %.1f tokens/s (%s, seed %d)", stats.PromptTokens, stats.Prefill.Seconds(),
					stats.Steps, float64(stats.Steps)/stats.Decode.Seconds(), res[0].Finished, sampler.Seed())
			}
			return nil
		},
	}
	f := cmd.Flags()
	mf.register(f)
	gf.register(f)
	sf.register(f)
	f.StringVar(&tokens, "tokens", "", "prompt as comma-separated token ids")
	f.StringVar(&prompt, "prompt", "", "prompt text")
	f.BoolVar(&chat, "chat", false, "wrap the prompt in the model's chat template")
	f.StringVar(&system, "system", "", "system prompt (implies --chat)")
	f.BoolVar(&ignoreEOS, "ignore-eos", false, "keep going past end-of-sequence tokens")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// generateSteered decodes the prompt in two batched lanes, base (0) and
// steered (1), and prints both.
func generateSteered(cmd *cobra.Command, m *engine.Model, ids []int, cfg *sampling.GenerationConfig, sf *steerFlags,
	shared, ignoreEOS, asJSON bool, decode func([]int) string) error {
	if cfg.Beams() > 1 {
		return fmt.Errorf("beam search with steering is not supported: use --num-beams 1")
	}
	st, err := sf.build(cmd.Context(), m)
	if err != nil {
		return err
	}
	defer st.free()
	sampler, err := sampling.NewSampler(cfg, 2, sampling.SamplerOptions{SharedDraws: shared, LaneExtra: st.laneExtra})
	if err != nil {
		return err
	}
	req := engine.Request{Prompt: ids, Lanes: 2, MaxNewTokens: cfg.MaxNew(len(ids)), IgnoreEOS: ignoreEOS,
		Chooser: sampler, EOS: cfg.EOSTokenID, Deadline: cfg.Deadline(time.Now())}
	if st.hook != nil {
		req.Hook = st.hook
	}
	if m.Tokenizer != nil {
		req.Stop = sampling.StopStrings(m.Tokenizer, cfg.StopStrings)
	}
	res, _, err := m.Generate(cmd.Context(), req)
	if err != nil {
		return err
	}
	lanes := make([]laneJSON, 2)
	for b := range lanes {
		lanes[b] = laneJSON{Tokens: res[b].Tokens, Text: decode(res[b].Tokens), Finished: res[b].Finished}
		if lanes[b].Tokens == nil {
			lanes[b].Tokens = []int{}
		}
	}
	out := cmd.OutOrStdout()
	if asJSON {
		return json.NewEncoder(out).Encode(map[string]any{"base": lanes[0], "steered": lanes[1], "seed": sampler.Seed(),
			"steering": map[string]any{"source": st.describe, "layer": st.layer, "alpha": st.alpha, "mode": st.modeName,
				"scope": st.scope, "schedule": st.schedule.String()}})
	}
	fmt.Fprintf(out, "── base ──\n%s\n── steered (%s, layer %d, alpha %g, %s) ──\n%s\n", lanes[0].Text, st.describe, st.layer, st.alpha, st.modeName, lanes[1].Text)
	return nil
}
