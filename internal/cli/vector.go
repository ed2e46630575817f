package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/steering"
	"github.com/spf13/cobra"
)

func newVectorCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "vector", Short: "Make and inspect steering vectors"}
	cmd.AddCommand(newVectorMakeCmd(), newVectorLayersCmd(), newVectorPresetsCmd(), newVectorCalibrateCmd())
	return cmd
}

// vectorSource is the contrastive data of vector make/layers.
type vectorSource struct {
	preset, positive, negative, method string
	response                           int
}

func (v *vectorSource) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&v.preset, "preset", "", "persona preset")
	cmd.Flags().StringVar(&v.positive, "positive", "", "file of positive texts, one per line")
	cmd.Flags().StringVar(&v.negative, "negative", "", "file of negative texts, one per line (paired by line)")
	cmd.Flags().StringVar(&v.method, "method", "mean", "mean (difference of means) or pca (of paired differences)")
	cmd.Flags().IntVar(&v.response, "response-tokens", 0, "average over this many generated response tokens instead of the last prompt token")
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			out = append(out, strings.ReplaceAll(line, `\n`, "\n"))
		}
	}
	return out, sc.Err()
}

// progressLine shows "genkit: reading hidden states N/T" on one line of w,
// rewritten in place. end finishes a line that a failed or interrupted run
// left open, so that what is printed next starts on a line of its own.
type progressLine struct {
	w    io.Writer
	open bool
}

func (p *progressLine) show(done, total int) {
	fmt.Fprintf(p.w, "\rgenkit: reading hidden states %d/%d", done, total)
	p.open = done != total
	if !p.open {
		fmt.Fprintln(p.w)
	}
}

func (p *progressLine) end() {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}

// extract reads the hidden states of the contrastive texts and makes the
// vectors. Stopped by its context (ctrl+c), it ends the progress line and
// returns an interruptedError naming the command.
func (v *vectorSource) extract(cmd *cobra.Command, m *engine.Model) (ex *steering.Extraction, preset *steering.Preset, err error) {
	line := &progressLine{w: cmd.ErrOrStderr()}
	defer func() {
		line.end()
		if err != nil && errors.Is(err, context.Canceled) && cmd.Context() != nil && cmd.Context().Err() != nil {
			ex, preset, err = nil, nil, interrupted(cmd)
		}
	}()
	progress := line.show
	method, err := steering.ParseMethod(v.method)
	if err != nil {
		return nil, nil, err
	}
	var pairs []steering.Pair
	switch {
	case v.preset != "" && (v.positive != "" || v.negative != ""):
		return nil, nil, fmt.Errorf("give --preset or --positive/--negative, not both")
	case v.preset != "":
		if preset, err = steering.PresetByName(v.preset); err != nil {
			return nil, nil, err
		}
		if v.response == 0 {
			ex, err := steering.PresetVectors(cmd.Context(), m, preset, method, progress)
			return ex, preset, err
		}
		if pairs, err = preset.Pairs(m); err != nil {
			return nil, nil, err
		}
	case v.positive != "" && v.negative != "":
		pos, err := readLines(v.positive)
		if err != nil {
			return nil, nil, fmt.Errorf("--positive: %w", err)
		}
		neg, err := readLines(v.negative)
		if err != nil {
			return nil, nil, fmt.Errorf("--negative: %w", err)
		}
		if pairs, err = steering.TextPairs(m, pos, neg); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, fmt.Errorf("give --preset NAME or --positive FILE --negative FILE")
	}
	ex, err = steering.Extract(cmd.Context(), m, pairs, steering.ExtractOptions{Method: method, ResponseTokens: v.response, Progress: progress})
	return ex, preset, err
}

func parseLayers(s string, m *engine.Model) ([]int, error) {
	ls, err := parseInts("--layers", s, "a layer index")
	if err != nil {
		return nil, err
	}
	out := make([]int, len(ls))
	for i, l := range ls {
		if out[i], err = steering.ResolveLayer(m, l); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func newVectorMakeCmd() *cobra.Command {
	var mf modelFlags
	var src vectorSource
	var layers, out string
	cmd := &cobra.Command{
		Use:   "make (--preset NAME | --positive FILE --negative FILE) [--method mean|pca] [--layers L,...] --out FILE.gguf",
		Short: "Make a steering vector from contrastive prompts and save it (llama.cpp control-vector GGUF, .safetensors or .npy)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("--out FILE is required")
			}
			m, err := mf.load()
			if err != nil {
				return err
			}
			defer freeModel(m)
			ex, _, err := src.extract(cmd, m)
			if err != nil {
				return err
			}
			vs := &steering.VectorSet{Vectors: ex.Vectors, ModelHint: m.Config.Architecture}
			if layers != "" {
				ls, err := parseLayers(layers, m)
				if err != nil {
					return err
				}
				vs.Vectors = map[int][]float32{}
				for _, l := range ls {
					vs.Vectors[l] = ex.Vectors[l]
				}
			}
			written := len(vs.Vectors)
			if strings.EqualFold(filepath.Ext(out), ".gguf") {
				kept, dropped := vs.LlamaCppBlocks()
				if len(dropped) > 0 {
					warn("layer 0 left out of %s: llama.cpp's control vectors start at direction.1 (write .safetensors to keep it)", out)
				}
				written = len(kept)
			}
			if err := vs.Save(out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d layers, best separation at layer %d (%.2f)\n", out, written, ex.BestLayer(), ex.Separation[ex.BestLayer()])
			return nil
		},
	}
	mf.register(cmd.Flags())
	src.register(cmd)
	cmd.Flags().StringVar(&layers, "layers", "", "keep only these layers (default: every layer)")
	cmd.Flags().StringVar(&out, "out", "", "output file (.gguf, .safetensors or .npy)")
	return cmd
}

func newVectorLayersCmd() *cobra.Command {
	var mf modelFlags
	var src vectorSource
	cmd := &cobra.Command{
		Use:   "layers (--preset NAME | --positive FILE --negative FILE) [--method mean|pca]",
		Short: "Print how well each layer separates the persona, to choose the steering layer",
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := mf.load()
			if err != nil {
				return err
			}
			defer freeModel(m)
			ex, preset, err := src.extract(cmd, m)
			if err != nil {
				return err
			}
			best := ex.BestLayer()
			top := ex.Separation[best]
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "layer  separation  |v|\n")
			for _, l := range ex.Layers() {
				var n float64
				for _, x := range ex.Vectors[l] {
					n += float64(x) * float64(x)
				}
				bar := strings.Repeat("#", max(0, int(20*ex.Separation[l]/top)))
				mark := ""
				if l == best {
					mark = "  <- best"
				}
				if preset != nil && l == preset.Layer(m.NumLayers()) {
					mark += "  <- preset's suggestion"
				}
				fmt.Fprintf(w, "%5d  %10.2f  %7.2f  %-20s%s\n", l, ex.Separation[l], sqrt(n), bar, mark)
			}
			return nil
		},
	}
	mf.register(cmd.Flags())
	src.register(cmd)
	return cmd
}

func newVectorPresetsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "presets",
		Short: "List the persona presets",
		RunE: func(cmd *cobra.Command, args []string) error {
			ps, err := steering.Presets()
			if err != nil {
				return err
			}
			for _, p := range ps {
				fmt.Fprintf(cmd.OutOrStdout(), "%-22s %s (layer %.0f%% of depth, alpha %g)\n", p.Name, p.Description, 100*p.LayerFraction, p.Alpha)
			}
			return nil
		},
	}
}
