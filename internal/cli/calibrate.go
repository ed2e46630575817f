package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/mlx-genkit/genkit/internal/smoke"
	"github.com/mlx-genkit/genkit/steering"
	"github.com/spf13/cobra"
)

func newVectorCalibrateCmd() *cobra.Command {
	var mf modelFlags
	var opts smoke.CalibrateOptions
	var alphas string
	var asJSON, dryRun bool
	cmd := &cobra.Command{
		Use:   "calibrate --preset NAME [--mode residual|logit-bias] [--lines N] [--bound X]",
		Short: "Find a preset's strongest setting that keeps the text sound, and store it for this model",
		Long: fmt.Sprintf(`calibrate sweeps a preset's strength (and, in residual mode, the blocks around the preset's
and the best-separated one) on held-in news lines (from line %d on, after those genkit smoke
judges), and picks the strongest setting whose steered lines have no more faults than the base
lane's on the same lines (the unsteered 135M model itself loops or runs out of tokens on some),
whose perplexity under the unsteered model stays within --bound times the base lane's, and which
gains persona. The
result is stored per preset, mode and model (a fingerprint) in the data dir's calibration.json;
genkit smoke, score and the TUI use it for that preset and mode.`, smoke.CalibrationLinesOffset),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Preset == "" {
				return fmt.Errorf("--preset is required (see `genkit vector presets`)")
			}
			if alphas != "" {
				for _, f := range strings.Split(alphas, ",") {
					a, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
					if err != nil || a <= 0 {
						return fmt.Errorf("--alphas: %q is not a positive number", f)
					}
					opts.Alphas = append(opts.Alphas, a)
				}
			}
			m, err := mf.load()
			if err != nil {
				return err
			}
			defer freeModel(m)
			out := cmd.OutOrStdout()
			if !asJSON {
				fmt.Fprintf(out, "%-7s %-5s %8s %8s %8s %9s %8s %6s  %s\n", "alpha", "layer", "suspect", "(base)", "gain", "markers", "ppl x", "kept", "verdict")
			}
			opts.Trial = func(t smoke.Trial) {
				if asJSON {
					return
				}
				v := "ok"
				if !t.OK {
					v = t.Why
				}
				fmt.Fprintf(out, "%-7g %-5d %8.2f %8.2f %8.3f %9.3f %8.2f %6.2f  %s\n", t.Alpha, t.Layer, t.SuspectSteered, t.SuspectBase, t.PersonaGain, t.MarkersSteered, t.PPLRatio, t.ContentKept, v)
			}
			c, trials, err := smoke.Calibrate(cmd.Context(), m, opts)
			if err != nil {
				return err
			}
			path := ""
			if !dryRun {
				if path, err = steering.SaveCalibration(c); err != nil {
					return err
				}
			}
			if asJSON {
				return json.NewEncoder(out).Encode(map[string]any{"calibration": c, "trials": trials, "saved": path})
			}
			if c.Found {
				fmt.Fprintf(out, "\n%s, %s: alpha %g at block %d (persona gain %.3f, perplexity x%.2f)\n", c.Preset, c.Mode, c.Alpha, c.Layer, c.Measured["persona_gain"], c.Measured["ppl_ratio"])
			} else {
				fmt.Fprintf(out, "\n%s, %s: no setting passed; %s\n", c.Preset, c.Mode, c.Why)
			}
			if path != "" {
				fmt.Fprintf(os.Stderr, "genkit: stored in %s\n", path)
			}
			return nil
		},
	}
	f := cmd.Flags()
	mf.register(f)
	f.StringVar(&opts.Preset, "preset", "", "persona preset")
	f.StringVar(&opts.Mode, "mode", "residual", "steering mode: residual or logit-bias")
	f.IntVar(&opts.Lines, "lines", 10, "held-in news lines per setting")
	f.Float64Var(&opts.Bound, "bound", smoke.DefaultBound, "fluency bound: steered perplexity at most this many times the base's")
	f.StringVar(&alphas, "alphas", "", "strengths to sweep, comma-separated (default: per mode)")
	f.IntVar(&opts.MaxNew, "max-new-tokens", 64, "tokens per rewrite")
	f.Uint64Var(&opts.Seed, "seed", 1234, "sampling seed")
	f.Float64Var(&opts.Temperature, "temperature", 0, "sample at this temperature (top-p 0.9); 0 decodes greedily")
	f.BoolVar(&dryRun, "dry-run", false, "measure and print, store nothing")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
