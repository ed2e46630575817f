package cli

import (
	"fmt"
	"path/filepath"

	"github.com/mlx-genkit/genkit/sessions"
	"github.com/spf13/cobra"
)

func newExportCmd() *cobra.Command {
	var mf modelFlags
	var session, out string
	var force bool
	cmd := &cobra.Command{
		Use:   "export --session NAME [--out DIR] [--force]",
		Short: "Export a saved session for llama.cpp and transformers (what the UI's ctrl+e writes)",
		Long: `Export a saved session: generation_config.json, steering.json, the control vector (steering.gguf),
prompt.txt and a README with a llama.cpp command line and a transformers script. The plan is resolved
against the model first, so an auto layer or alpha is written as a run would use it. The folder is
the exports folder of the data dir (exports/NAME) unless --out says otherwise; an earlier export's
files are replaced only with --force.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if session == "" {
				return fmt.Errorf("--session NAME is required (genkit --list-sessions lists them)")
			}
			s, err := sessions.Load(session)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("model") && s.Model != "" {
				mf.model = s.Model
			}
			m, err := mf.load()
			if err != nil {
				return err
			}
			defer freeModel(m)
			b, err := sessions.ExportBundle(cmd.Context(), m, s, out, sessions.BundleOptions{Force: force, ModelID: mf.model,
				Progress: func(done, total int) { progress("computing the "+s.Steering.Source()+" vector", done, total) }})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "exported %s (%s) to %s:\n", s.Name, b.Steering.Describe(), b.Dir)
			for _, f := range b.Files {
				fmt.Fprintf(w, "  %s\n", filepath.Join(b.Dir, f))
			}
			for _, n := range b.Notes {
				fmt.Fprintf(w, "note: %s\n", n)
			}
			return nil
		},
	}
	mf.register(cmd.Flags())
	cmd.Flags().StringVar(&session, "session", "", "the saved session to export")
	cmd.Flags().StringVar(&out, "out", "", "the export folder (default: exports/NAME in the data dir)")
	cmd.Flags().BoolVar(&force, "force", false, "replace the files of an earlier export in the folder")
	return cmd
}
