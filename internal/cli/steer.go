package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/steering"
	"github.com/spf13/pflag"
)

// steerFlags select a steering vector (a file or a preset) and how to apply
// it.
type steerFlags struct {
	vector, preset, method, schedule, scope, mode, fallback string
	layer                                                   int
	alpha                                                   float64
	normalize, finalNorm                                    bool
	fs                                                      *pflag.FlagSet
}

func (f *steerFlags) register(fs *pflag.FlagSet) {
	f.fs = fs
	fs.StringVar(&f.vector, "steer-vector", "", "steering vector file (.gguf control vector, .safetensors, .npy)")
	fs.StringVar(&f.preset, "preset", "", "steer with a persona preset (see `genkit vector presets`)")
	fs.StringVar(&f.method, "steer-method", "mean", "how a preset's vector is made: mean or pca")
	fs.IntVar(&f.layer, "steer-layer", 0, "block whose output is steered (negative counts from the end; default: the preset's suggestion or every layer in the file)")
	fs.Float64Var(&f.alpha, "alpha", 1, "steering strength (default: the preset's suggestion)")
	fs.StringVar(&f.schedule, "schedule", "constant", "alpha schedule: constant, warmup:N, ramp:A0:A1:N, window:START:END")
	fs.StringVar(&f.scope, "steer-scope", "all", "steered positions: all, prompt or generated")
	fs.StringVar(&f.mode, "steer-mode", "residual", "residual (add to a block's output) or logit-bias (alpha * W_U v)")
	fs.BoolVar(&f.normalize, "steer-normalize", false, "keep each position's norm (residual mode)")
	fs.BoolVar(&f.finalNorm, "steer-final-norm", false, "apply the final norm to v before W_U (logit-bias mode)")
	fs.StringVar(&f.fallback, "steer-fallback", "warn", "without a usable injection point: warn (use logit bias) or error")
}

func (f *steerFlags) enabled() bool { return f.vector != "" || f.preset != "" }

// steerSetup is a resolved steering configuration.
type steerSetup struct {
	hook      *steering.Injection
	bias      *steering.LogitBias
	layer     int
	alpha     float64
	vector    []float32
	describe  string
	schedule  steering.Schedule
	scope     steering.Scope
	modeName  string
	presetRef *steering.Preset
}

func (s *steerSetup) free() {
	if s != nil && s.hook != nil {
		_ = mlx.Do(func() error { s.hook.Free(); return nil })
	}
}

// laneExtra gives the steered lanes (all but lane 0) the logit bias.
func (s *steerSetup) laneExtra(lane int) []sampling.Processor {
	if s.bias == nil || lane == 0 {
		return nil
	}
	return []sampling.Processor{s.bias}
}

func (f *steerFlags) build(ctx context.Context, m *engine.Model) (*steerSetup, error) {
	if f.vector != "" && f.preset != "" {
		return nil, fmt.Errorf("give --steer-vector or --preset, not both")
	}
	sched, err := steering.ParseSchedule(f.schedule)
	if err != nil {
		return nil, err
	}
	scope, err := steering.ParseScope(f.scope)
	if err != nil {
		return nil, err
	}
	st := &steerSetup{alpha: f.alpha, schedule: sched, scope: scope, modeName: f.mode}
	var vs *steering.VectorSet
	layerSet := f.fs != nil && f.fs.Changed("steer-layer")
	if f.preset != "" {
		p, err := steering.PresetByName(f.preset)
		if err != nil {
			return nil, err
		}
		method, err := steering.ParseMethod(f.method)
		if err != nil {
			return nil, err
		}
		ex, err := steering.PresetVectors(ctx, m, p, method, func(done, total int) {
			fmt.Fprintf(os.Stderr, "\rgenkit: computing the %s vector: %d/%d prompts", p.Name, done, total)
			if done == total {
				fmt.Fprintln(os.Stderr)
			}
		})
		if err != nil {
			return nil, err
		}
		vs = &steering.VectorSet{Vectors: ex.Vectors}
		if !layerSet {
			f.layer = p.Layer(m.NumLayers())
			layerSet = true
		}
		if f.fs == nil || !f.fs.Changed("alpha") {
			st.alpha = p.Alpha
		}
		st.presetRef = p
		st.describe = p.Name
	} else {
		err := mlx.Do(func() error {
			var err error
			vs, err = steering.LoadVectors(f.vector, f.layer)
			return err
		})
		if err != nil {
			return nil, err
		}
		st.describe = f.vector
	}
	if err := vs.Check(m.HiddenSize()); err != nil {
		return nil, fmt.Errorf("%s: %w", st.describe, err)
	}
	vectors := vs.Vectors
	if layerSet {
		l, err := steering.ResolveLayer(m, f.layer)
		if err != nil {
			return nil, err
		}
		v, ok := vs.Vectors[l]
		if !ok && len(vs.Vectors) == 1 {
			for _, only := range vs.Vectors {
				v = only
			}
		} else if !ok {
			return nil, fmt.Errorf("%s has no vector for layer %d (it has %v)", st.describe, l, vs.Layers())
		}
		vectors = map[int][]float32{l: v}
	}
	for l, v := range vectors {
		st.layer, st.vector = l, v
	}
	mode := f.mode
	if mode == "residual" && m.NumLayers() == 0 {
		if f.fallback == "error" {
			return nil, fmt.Errorf("the model has no decoder block to steer (use --steer-mode logit-bias)")
		}
		warn("the model has no usable injection point: steering through the logit bias instead")
		mode = "logit-bias"
	}
	switch mode {
	case "residual":
		err = mlx.Do(func() error {
			var err error
			st.hook, err = steering.NewInjection(m, vectors, steering.InjectionOptions{Alpha: st.alpha, Schedule: sched, Scope: scope, Normalize: f.normalize})
			return err
		})
	case "logit-bias":
		if len(vectors) > 1 {
			return nil, fmt.Errorf("logit-bias steering takes one vector: pick one with --steer-layer (file has %v)", vs.Layers())
		}
		var dir []float32
		err = mlx.Do(func() error {
			var err error
			dir, err = steering.UnembedVector(m, st.vector, f.finalNorm)
			return err
		})
		st.bias = &steering.LogitBias{Direction: dir, Alpha: st.alpha, Schedule: sched}
	default:
		return nil, fmt.Errorf("--steer-mode %q: want residual or logit-bias", f.mode)
	}
	if err != nil {
		return nil, err
	}
	st.modeName = mode
	return st, nil
}
