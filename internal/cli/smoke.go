package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mlx-genkit/genkit/internal/smoke"
	"github.com/spf13/cobra"
)

func newSmokeCmd() *cobra.Command {
	var mf modelFlags
	var opts smoke.Options
	var alpha float64
	var layer int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "smoke --preset NAME [--mode residual|logit-bias] [--lines N] [--json]",
		Short: "Rewrite Reuters news lines in a persona and judge them: faults, persona gain, fluency, content kept, determinism, divergence, KL against HF",
		Long: `smoke rewrites news lines with a base and a steered lane and judges the run by criteria that
can fail: suspect rate (quality.Suspect's faults: character or word runs, phrase loops, another
language, emoji or symbol spam, digit or LaTeX noise, empty or truncated text, leaked template
tokens, an echoed instruction) at most 2% in each lane; persona gain (the steered text's projection
on the persona direction through the unsteered model, over the base text's) above 0; fluency (the
steered text's perplexity under the unsteered model over the base text's) within --bound;
determinism, divergence, and KL against stored HF distributions. The setting is the calibrated
one for this preset, mode and model when there is one (genkit vector calibrate), else the
preset's; --alpha and --steer-layer override it. Exit status 1 when a criterion fails.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Preset == "" {
				return fmt.Errorf("--preset is required (see `genkit vector presets`)")
			}
			if cmd.Flags().Changed("alpha") {
				opts.Alpha = &alpha
			}
			if cmd.Flags().Changed("steer-layer") {
				opts.Layer = &layer
			}
			m, err := mf.load()
			if err != nil {
				return err
			}
			defer freeModel(m)
			opts.Progress = func(done, total int) {
				fmt.Fprintf(os.Stderr, "\rgenkit smoke: %d/%d lines", done, total)
				if done == total {
					fmt.Fprintln(os.Stderr)
				}
			}
			rep, err := smoke.Run(cmd.Context(), m, opts)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				rep.Examples = nil
				if err := json.NewEncoder(out).Encode(rep); err != nil {
					return err
				}
			} else {
				printSmoke(out, rep)
			}
			if !rep.Pass {
				return exitCode(1)
			}
			return nil
		},
	}
	f := cmd.Flags()
	mf.register(f)
	f.StringVar(&opts.Preset, "preset", "", "persona preset")
	f.StringVar(&opts.Mode, "mode", "residual", "steering mode: residual or logit-bias")
	f.Float64Var(&alpha, "alpha", 0, "steering strength (default: calibrated, else the preset's)")
	f.IntVar(&layer, "steer-layer", 0, "steered block, 0-based (default: calibrated, else the preset's)")
	f.IntVar(&opts.Lines, "lines", 20, "news lines to rewrite")
	f.IntVar(&opts.MaxNew, "max-new-tokens", 64, "tokens per rewrite")
	f.Uint64Var(&opts.Seed, "seed", 1234, "sampling seed")
	f.Float64Var(&opts.Temperature, "temperature", 0, "sample both lanes at this temperature (top-p 0.9); 0 decodes greedily")
	f.Float64Var(&opts.Bound, "bound", smoke.DefaultBound, "fluency bound: steered perplexity at most this many times the base's")
	f.StringVar(&opts.HFRef, "hf-ref", "engine/testdata/hf/smollm2_dequant_fp32.json", "stored HF next-token distributions for kl_vs_hf (missing: null)")
	f.BoolVar(&opts.Guardrail.AvoidIdentical, "avoid-identical", false, "resample a steered lane identical to its base")
	f.BoolVar(&opts.Guardrail.ResampleSuspect, "resample-suspect", false, "resample a lane with suspect patterns")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printSmoke(out io.Writer, rep *smoke.Report) {
	fmt.Fprintf(out, "preset %s, %s mode, layer %d, alpha %g (%s), %d news lines\n", rep.Preset, rep.Mode, rep.Layer, rep.Alpha, rep.Setting, rep.Lines)
	fmt.Fprintf(out, "  %-28s %10s   %-8s %s\n", "criterion", "value", "target", "")
	for _, c := range rep.Criteria {
		mark := "ok"
		if !c.Pass {
			mark = "FAIL"
		}
		fmt.Fprintf(out, "  %-28s %10.4g   %-8s %s\n", c.Name, c.Value, c.Target, mark)
	}
	fmt.Fprintf(out, "  measures: persona %.3g base -> %.3g steered; marker words %.3f -> %.3f; content kept %.2f -> %.2f\n",
		rep.PersonaBase, rep.PersonaSteered, rep.MarkersBase, rep.MarkersSteered, rep.ContentKeptBase, rep.ContentKeptSteered)
	if len(rep.ReasonsSteered) > 0 || len(rep.ReasonsBase) > 0 {
		fmt.Fprintf(out, "  faults: base %v, steered %v\n", rep.ReasonsBase, rep.ReasonsSteered)
	}
	fmt.Fprintln(out, "\nworst steered lines:")
	for _, l := range rep.Worst {
		reasons := "no fault"
		if len(l.SteeredReasons) > 0 {
			var rs []string
			for _, r := range l.SteeredReasons {
				rs = append(rs, string(r))
			}
			reasons = strings.Join(rs, ", ")
		}
		fmt.Fprintf(out, "  [%s; ppl x%.2f; kept %.2f]\n    source:  %s\n    steered: %s\n", reasons, l.PPLRatio, l.ContentKept[1], l.Source, l.Steered)
	}
	if rep.Pass {
		fmt.Fprintln(out, "\nverdict: pass")
	} else {
		fmt.Fprintln(out, "\nverdict: FAIL")
	}
}
