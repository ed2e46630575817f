package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/steering"
	"github.com/spf13/pflag"
)

// steerFlags select a steering vector (a file or a preset) and how to apply
// it; plan turns them into a steering.Plan (the type every front end
// shares).
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
	fs.Float64Var(&f.alpha, "alpha", steering.DefaultAlpha, "steering strength (default: the preset's suggestion)")
	fs.StringVar(&f.schedule, "schedule", "constant", "alpha schedule: constant, warmup:N, ramp:A0:A1:N, window:START:END")
	fs.StringVar(&f.scope, "steer-scope", "all", "steered positions: all, prompt or generated")
	fs.StringVar(&f.mode, "steer-mode", "residual", "residual (add to a block's output) or logit-bias (alpha * W_U v)")
	fs.BoolVar(&f.normalize, "steer-normalize", false, "keep each position's norm (residual mode)")
	fs.BoolVar(&f.finalNorm, "steer-final-norm", false, "apply the final norm to v before W_U (logit-bias mode)")
	fs.StringVar(&f.fallback, "steer-fallback", "warn", "without a usable injection point: warn (use logit bias) or error")
}

func (f *steerFlags) enabled() bool { return f.vector != "" || f.preset != "" }

func (f *steerFlags) changed(name string) bool { return f.fs != nil && f.fs.Changed(name) }

// planFlags name the flag behind each plan field, for error messages.
var planFlags = map[string]string{"steering.preset": "--preset", "steering.vector": "--steer-vector",
	"steering.method": "--steer-method", "steering.layer": "--steer-layer", "steering.alpha": "--alpha",
	"steering.schedule": "--schedule", "steering.scope": "--steer-scope", "steering.mode": "--steer-mode"}

// flagError renames a plan field in err to the flag that set it.
func flagError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for field, flag := range planFlags {
		if strings.HasPrefix(msg, field+":") || strings.HasPrefix(msg, field+" ") {
			return fmt.Errorf("%s%s", flag, strings.TrimPrefix(msg, field))
		}
	}
	return err
}

// apply overlays the flags the user gave on base (a saved session's plan, or
// nil) and returns the plan, or nil when nothing steers.
func (f *steerFlags) apply(base *steering.Plan) (*steering.Plan, error) {
	if !f.enabled() && base == nil {
		for _, name := range []string{"steer-layer", "alpha", "schedule", "steer-scope", "steer-mode", "steer-method"} {
			if f.changed(name) {
				return nil, fmt.Errorf("--%s needs a vector to steer with: give --preset or --steer-vector", name)
			}
		}
		return nil, nil
	}
	p := steering.Plan{Method: steering.MethodMean, Schedule: steering.Constant, Scope: steering.ScopeAll, Mode: steering.ModeResidual}
	if base != nil {
		p = *base
	}
	switch {
	case f.vector != "" && f.preset != "":
		return nil, fmt.Errorf("give --steer-vector or --preset, not both")
	case f.preset != "":
		p.Preset, p.Vector = f.preset, ""
	case f.vector != "":
		p.Vector, p.Preset = f.vector, ""
	}
	if base == nil || f.changed("steer-method") {
		p.Method = steering.Method(f.method)
	}
	if base == nil || f.changed("steer-scope") {
		p.Scope = steering.Scope(f.scope)
	}
	if base == nil || f.changed("steer-mode") {
		p.Mode = steering.Mode(f.mode)
	}
	if base == nil || f.changed("schedule") {
		sched, err := steering.ParseSchedule(f.schedule)
		if err != nil {
			return nil, fmt.Errorf("--schedule: %w", err)
		}
		p.Schedule = sched
	}
	if f.changed("steer-layer") {
		l := f.layer
		p.Layer = &l
	}
	if f.changed("alpha") {
		if err := steering.CheckAlpha(f.alpha); err != nil {
			return nil, fmt.Errorf("--alpha: %w", err)
		}
		a := f.alpha
		p.Alpha = &a
	}
	if f.changed("steer-normalize") || base == nil {
		p.Normalize = f.normalize
	}
	if f.changed("steer-final-norm") || base == nil {
		p.FinalNorm = f.finalNorm
	}
	if err := p.Validate(); err != nil {
		return nil, flagError(err)
	}
	return &p, nil
}

// forModel applies --steer-fallback: a residual plan on a model without a
// decoder block steers through the logit bias (with a warning) or fails.
func (f *steerFlags) forModel(p *steering.Plan, m *engine.Model) (*steering.Plan, error) {
	if p == nil || p.Mode == steering.ModeLogitBias || m.NumLayers() > 0 {
		return p, nil
	}
	if f.fallback == "error" {
		return nil, fmt.Errorf("the model has no decoder block to steer (use --steer-mode logit-bias)")
	}
	warn("the model has no usable injection point: steering through the logit bias instead")
	q := *p
	q.Mode = steering.ModeLogitBias
	return &q, nil
}

// progress prints a preset's vector computation on stderr.
func progress(what string, done, total int) {
	fmt.Fprintf(os.Stderr, "\rgenkit: %s: %d/%d prompts", what, done, total)
	if done == total {
		fmt.Fprintln(os.Stderr)
	}
}
