package cli

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/mlx-genkit/genkit/engine"
)

// modelFlags are the flags every model-loading command shares.
type modelFlags struct {
	model     string
	tokenizer string
	weights   string
	dtype     string
}

func (f *modelFlags) register(fs interface {
	StringVar(*string, string, string, string)
}) {
	fs.StringVar(&f.model, "model", "", "model directory, .gguf file or hub id (default: the default model)")
	fs.StringVar(&f.tokenizer, "tokenizer", "", "a tokenizer.json to use instead of the model's")
	fs.StringVar(&f.weights, "weights", "auto", "quantized weights: auto, quantized (quantized_matmul) or dense (expanded)")
	fs.StringVar(&f.dtype, "dtype", "auto", "compute dtype: auto (float32 on the CPU, the weights' own on a GPU), float32, float16 or bfloat16")
}

// options are the load options the flags ask for.
func (f *modelFlags) options() (engine.LoadOptions, error) {
	mode, err := f.mode()
	if err != nil {
		return engine.LoadOptions{}, err
	}
	opts := engine.LoadOptions{Tokenizer: f.tokenizer, Weights: mode, NativeOnGPU: true}
	if f.dtype != "" && f.dtype != "auto" {
		if opts.DType, err = engine.ParseDType(f.dtype); err != nil {
			return opts, fmt.Errorf("--%w", err)
		}
	}
	return opts, nil
}

func (f *modelFlags) mode() (engine.WeightMode, error) {
	switch f.weights {
	case "", "auto":
		return engine.WeightsAuto, nil
	case "quantized":
		return engine.WeightsQuantized, nil
	case "dense":
		return engine.WeightsDense, nil
	}
	return 0, fmt.Errorf("--weights %q: want auto, quantized or dense", f.weights)
}

// load resolves and loads the model.
func (f *modelFlags) load() (*engine.Model, error) {
	opts, err := f.options()
	if err != nil {
		return nil, err
	}
	path, err := engine.ResolveModel(f.model, nil)
	if err != nil {
		return nil, err
	}
	if n := engine.CompileNotice(); n != "" {
		warn("%s", n)
	}
	if opts.Group, err = joinGroup(); err != nil {
		return nil, err
	}
	return engine.Load(context.Background(), path, opts)
}

// joinGroup joins the tensor-parallel group `genkit launch` started this
// process in (nil when it was not). Every rank computes the same tokens;
// only rank 0 writes them: the others' standard output is discarded.
func joinGroup() (*engine.DistGroup, error) {
	g, err := engine.InitDistributed(context.Background())
	if err != nil || g == nil {
		return nil, err
	}
	if g.Size() < 2 {
		return nil, nil
	}
	if g.Rank() != 0 {
		if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
			os.Stdout = null
		}
	}
	return g, nil
}

func freeModel(m *engine.Model) { m.Close() }

// parseInts reads a comma-separated list of integers given to flag.
func parseInts(flag, s, what string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		v, err := strconv.Atoi(part)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not %s", flag, part, what)
		}
		out = append(out, v)
	}
	return out, nil
}

// parseTokens reads "1,2,3".
func parseTokens(s string, vocab int) ([]int, error) {
	out, err := parseInts("--tokens", s, "a token id")
	if err != nil {
		return nil, err
	}
	for _, id := range out {
		if id < 0 || id >= vocab {
			return nil, fmt.Errorf("--tokens: id %d outside the vocabulary [0, %d)", id, vocab)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--tokens: no token ids given")
	}
	return out, nil
}

func warn(format string, args ...any) { fmt.Fprintf(os.Stderr, "genkit: "+format+"\n", args...) }
