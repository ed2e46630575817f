package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
)

func newTokenizeCmd() *cobra.Command {
	var mf modelFlags
	var pf promptFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "tokenize (--prompt TEXT | --messages FILE) [--chat] [--system TEXT] [--chat-kwargs JSON] [--json]",
		Short: "Print the token ids of a prompt as genkit feeds it to the model",
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := pf.build(nil)
			if err != nil {
				return err
			}
			if pf.empty(p) {
				return fmt.Errorf("give --prompt TEXT or --messages FILE")
			}
			m, err := mf.load()
			if err != nil {
				return err
			}
			defer freeModel(m)
			ids, err := m.EncodePrompt(p)
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
	pf.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
