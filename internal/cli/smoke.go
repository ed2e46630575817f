package cli

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/mlx-genkit/genkit/internal/smoke"
	"github.com/spf13/cobra"
)

func newSmokeCmd() *cobra.Command {
	var mf modelFlags
	var opts smoke.Options
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "smoke --preset NAME [--lines N] [--json]",
		Short: "Rewrite Reuters news lines in a persona and measure suspect rates, determinism, divergence and KL against HF",
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Preset == "" {
				return fmt.Errorf("--preset is required (see `genkit vector presets`)")
			}
			m, err := mf.load()
			if err != nil {
				return err
			}
			defer freeModel(m)
			opts.Progress = func(done, total int) { fmt.Fprintf(os.Stderr, "\rgenkit smoke: %d/%d lines", done, total) }
			rep, err := smoke.Run(cmd.Context(), m, opts)
			fmt.Fprintln(os.Stderr)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				rep.Examples = nil
				return json.NewEncoder(out).Encode(rep)
			}
			kl := "n/a"
			if rep.KLvsHF != nil {
				kl = fmt.Sprintf("%.3g", *rep.KLvsHF)
			}
			fmt.Fprintf(out, "preset %s (layer %d, alpha %g), %d news lines\n", rep.Preset, rep.Layer, rep.Alpha, rep.Lines)
			fmt.Fprintf(out, "  %-22s %8s   %s\n", "criterion", "value", "target")
			fmt.Fprintf(out, "  %-22s %8.3f   <= 0.02\n", "suspect rate (base)", rep.SuspectRateBase)
			fmt.Fprintf(out, "  %-22s %8.3f   <= 0.02\n", "suspect rate (steered)", rep.SuspectRateSteered)
			fmt.Fprintf(out, "  %-22s %8.3f   1.0\n", "determinism", rep.Determinism)
			fmt.Fprintf(out, "  %-22s %8.3f   > 0.95\n", "divergence", rep.Divergence)
			fmt.Fprintf(out, "  %-22s %8s   (mean KL(HF || genkit))\n", "kl_vs_hf", kl)
			for _, e := range rep.Examples {
				fmt.Fprintf(out, "\nsource:  %s\nbase:    %s\nsteered: %s\n", e.Source, e.Base, e.Steered)
			}
			return nil
		},
	}
	f := cmd.Flags()
	mf.register(f)
	f.StringVar(&opts.Preset, "preset", "", "persona preset")
	f.IntVar(&opts.Lines, "lines", 20, "news lines to rewrite")
	f.IntVar(&opts.MaxNew, "max-new-tokens", 40, "tokens per rewrite")
	f.Uint64Var(&opts.Seed, "seed", 1234, "sampling seed")
	f.StringVar(&opts.HFRef, "hf-ref", "engine/testdata/hf/smollm2_dequant_fp32.json", "stored HF next-token distributions for kl_vs_hf (missing: null)")
	f.BoolVar(&opts.Guardrail.AvoidIdentical, "avoid-identical", false, "resample a steered lane identical to its base")
	f.BoolVar(&opts.Guardrail.ResampleSuspect, "resample-suspect", false, "resample a lane with suspect patterns")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
