package cli

import (
	"encoding/json"
	"fmt"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/spf13/cobra"
)

func newTokenizeCmd() *cobra.Command {
	var mf modelFlags
	var prompt, system string
	var chat, asJSON bool
	cmd := &cobra.Command{
		Use:   "tokenize --prompt TEXT [--chat] [--system TEXT] [--json]",
		Short: "Print the token ids of a prompt as genkit feeds it to the model",
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := mf.load()
			if err != nil {
				return err
			}
			defer freeModel(m)
			if prompt == "" {
				return fmt.Errorf("give --prompt TEXT")
			}
			ids, err := m.EncodePrompt(engine.Prompt{Text: prompt, System: system, Chat: chat || system != ""})
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"tokens": ids})
			}
			for i, id := range ids {
				fmt.Fprintf(cmd.OutOrStdout(), "%5d %6d %q\n", i, id, m.TokenText(id))
			}
			return nil
		},
	}
	mf.register(cmd.Flags())
	cmd.Flags().StringVar(&prompt, "prompt", "", "text to tokenize")
	cmd.Flags().BoolVar(&chat, "chat", false, "wrap the text in the model's chat template")
	cmd.Flags().StringVar(&system, "system", "", "system prompt (implies --chat)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
