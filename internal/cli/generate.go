package cli

import (
	"encoding/json"
	"fmt"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/sessions"
	"github.com/mlx-genkit/genkit/steering"
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
	var pf promptFlags
	var tokens, session string
	var ignoreEOS, asJSON, sweep bool
	cmd := &cobra.Command{
		Use:   "generate (--tokens 1,2,3 | --prompt TEXT [--chat] [--system TEXT] [--messages FILE] [--chat-kwargs JSON] | --session NAME) [sampling flags] [--json]",
		Short: "Generate a continuation (streamed to the terminal, or as JSON)",
		Long: `Generate a continuation of a prompt. With --preset or --steer-vector the prompt is decoded twice
at once, base and steered, exactly as the terminal UI does; --session NAME decodes a saved session
(its prompt, steering and generation settings; flags given override them) and gives the tokens
the UI gives for it.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			var saved *sessions.Session
			if session != "" {
				var err error
				if saved, err = sessions.Load(session); err != nil {
					return err
				}
				if !fl.Changed("model") && saved.Model != "" {
					mf.model = saved.Model
				}
			}
			m, err := mf.load()
			if err != nil {
				return err
			}
			defer freeModel(m)
			run := steering.Run{IgnoreEOS: ignoreEOS, SharedDraws: gf.sharedDraws}
			var basePlan *steering.Plan
			var baseGen *sampling.GenerationConfig
			var basePrompt *engine.Prompt
			if saved != nil {
				p := saved.PromptOf()
				basePrompt, basePlan, baseGen = &p, &saved.Steering, &saved.Generation
				if !fl.Changed("shared-draws") {
					run.SharedDraws = saved.SharedDraws
				}
			}
			if run.Prompt, err = pf.build(basePrompt); err != nil {
				return err
			}
			if tokens != "" {
				if run.Prompt.IDs, err = parseTokens(tokens, m.Config.VocabSize); err != nil {
					return err
				}
			} else if pf.empty(run.Prompt) {
				return fmt.Errorf("give --prompt TEXT, --messages FILE, --tokens IDS or --session NAME")
			}
			if run.Plan, err = sf.apply(basePlan); err != nil {
				return err
			}
			if run.Plan, err = sf.forModel(run.Plan, m); err != nil {
				return err
			}
			if sweep {
				if run.Plan == nil {
					return fmt.Errorf("--sweep needs a vector to steer with: give --preset or --steer-vector")
				}
				run.LaneScales = steering.SweepLanes
			}
			if run.Gen, err = gf.build(m, baseGen); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			obs := steering.Observers{Progress: progress}
			streaming := !asJSON && run.Plan == nil && run.Gen.Beams() == 1 && m.Tokenizer != nil
			if streaming {
				obs.Token = func(t steering.Token) { fmt.Fprint(out, t.Piece) }
			}
			res, err := steering.Decode(cmd.Context(), m, run, obs)
			if err != nil {
				return flagError(err)
			}
			lanes := make([]laneJSON, len(res.Lanes))
			for i, l := range res.Lanes {
				lanes[i] = laneJSON{Tokens: l.Tokens, Text: l.Text, Finished: l.Finished}
				if i < len(res.Scores) {
					lanes[i].Score = sampling.Ptr(res.Scores[i])
					lanes[i].Finished = ""
				}
			}
			if err := cmd.Context().Err(); err != nil {
				if streaming {
					fmt.Fprintln(out)
				}
				return err
			}
			switch {
			case res.Scores != nil:
				if asJSON {
					return json.NewEncoder(out).Encode(map[string]any{"base": lanes[0], "beams": lanes})
				}
				for i, b := range lanes {
					fmt.Fprintf(out, "[beam %d, score %.4f] %s\n", i, *b.Score, b.Text)
				}
				return nil
			case res.Steering != nil:
				return printSteered(out, res, lanes, asJSON)
			}
			if asJSON {
				return json.NewEncoder(out).Encode(map[string]any{"base": lanes[0], "seed": res.Seed})
			}
			if !streaming {
				fmt.Fprintln(out, lanes[0].Tokens)
				return nil
			}
			fmt.Fprintln(out)
			st := res.Stats
			if st.Steps > 0 && st.Decode > 0 {
				warn("%d prompt tokens in %.2fs, %d tokens at %.1f tokens/s (%s, seed %d)", st.PromptTokens, st.Prefill.Seconds(),
					st.Steps, float64(st.Steps)/st.Decode.Seconds(), lanes[0].Finished, res.Seed)
			}
			return nil
		},
	}
	f := cmd.Flags()
	mf.register(f)
	gf.register(f)
	sf.register(f)
	pf.register(f)
	f.StringVar(&tokens, "tokens", "", "prompt as comma-separated token ids")
	f.StringVar(&session, "session", "", "decode a saved session (flags given override its settings)")
	f.BoolVar(&sweep, "sweep", false, "four steered lanes at 0.5, 1, 1.5 and 2 times alpha (as the UI's sweep)")
	f.BoolVar(&ignoreEOS, "ignore-eos", false, "keep going past end-of-sequence tokens")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printSteered prints a steered run: the base lane and each steered lane.
func printSteered(out interface{ Write([]byte) (int, error) }, res *steering.Outcome, lanes []laneJSON, asJSON bool) error {
	r := res.Steering
	if asJSON {
		doc := map[string]any{"base": lanes[0], "steered": lanes[1], "seed": res.Seed,
			"steering": map[string]any{"source": r.Plan.Source(), "layer": r.Layer, "alpha": r.Alpha, "mode": r.Mode,
				"scope": r.Plan.Scope, "schedule": r.Plan.Schedule.String()}}
		if len(lanes) > 2 {
			doc["lanes"] = lanes
		}
		return json.NewEncoder(out).Encode(doc)
	}
	fmt.Fprintf(out, "── base ──\n%s\n", lanes[0].Text)
	scales := steering.PairLanes
	if len(lanes) > 2 {
		scales = steering.SweepLanes
	}
	for i := 1; i < len(lanes); i++ {
		alpha := r.Alpha
		if i < len(scales) {
			alpha *= scales[i]
		}
		fmt.Fprintf(out, "── steered (%s, layer %d, alpha %g, %s) ──\n%s\n", r.Plan.Source(), r.Layer, alpha, r.Mode, lanes[i].Text)
	}
	return nil
}
