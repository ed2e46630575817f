package cli

import (
	"encoding/json"
	"fmt"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/spf13/cobra"
)

type laneJSON struct {
	Tokens []int  `json:"tokens"`
	Text   string `json:"text"`
}

func newGenerateCmd() *cobra.Command {
	var mf modelFlags
	var tokens, prompt, system string
	var chat, greedy, ignoreEOS, asJSON bool
	var maxNew int
	cmd := &cobra.Command{
		Use:   "generate (--tokens 1,2,3 | --prompt TEXT [--chat] [--system TEXT]) [--max-new-tokens N] [--json]",
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
			_ = greedy // greedy is the only decoding until sampling lands
			req := engine.Request{Prompt: ids, Lanes: 1, MaxNewTokens: maxNew, IgnoreEOS: ignoreEOS}
			if m.Tokenizer != nil {
				req.EOS = m.Tokenizer.EOS
			}
			out := cmd.OutOrStdout()
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
			base := laneJSON{Tokens: res[0].Tokens}
			if base.Tokens == nil {
				base.Tokens = []int{}
			}
			if m.Tokenizer != nil {
				base.Text = m.Tokenizer.Decode(res[0].Tokens, true)
			}
			if asJSON {
				return json.NewEncoder(out).Encode(map[string]any{"base": base})
			}
			if stream == nil {
				fmt.Fprintln(out, base.Tokens)
				return nil
			}
			fmt.Fprintln(out)
			if stats.Steps > 0 && stats.Decode > 0 {
				warn("%d prompt tokens in %.2fs, %d tokens at %.1f tokens/s (%s)", stats.PromptTokens, stats.Prefill.Seconds(),
					stats.Steps, float64(stats.Steps)/stats.Decode.Seconds(), res[0].Finished)
			}
			return nil
		},
	}
	f := cmd.Flags()
	mf.register(f)
	f.StringVar(&tokens, "tokens", "", "prompt as comma-separated token ids")
	f.StringVar(&prompt, "prompt", "", "prompt text")
	f.BoolVar(&chat, "chat", false, "wrap the prompt in the model's chat template")
	f.StringVar(&system, "system", "", "system prompt (implies --chat)")
	f.IntVar(&maxNew, "max-new-tokens", 64, "tokens to generate")
	f.BoolVar(&greedy, "greedy", false, "greedy decoding (argmax)")
	f.BoolVar(&ignoreEOS, "ignore-eos", false, "keep going past end-of-sequence tokens")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
