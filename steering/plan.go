package steering

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
)

// Mode is how steered lanes are steered.
type Mode string

// The modes: add alpha * v to a block's output (residual injection), or add
// alpha * W_U v to the lane's scores (logit bias).
const (
	ModeResidual  Mode = "residual"
	ModeLogitBias Mode = "logit-bias"
)

// ParseMode reads residual or logit-bias ("" is residual).
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case ModeResidual, "":
		return ModeResidual, nil
	case ModeLogitBias:
		return ModeLogitBias, nil
	}
	return "", fmt.Errorf("steering mode %q: want residual or logit-bias", s)
}

// The defaults of a plan, in one place: every front end reads them from here.
const (
	// DefaultPreset is the persona a new TUI session steers with.
	DefaultPreset = "pirate"
	// DefaultAlpha is the strength of a vector file's plan without an alpha
	// (a preset's plan uses the preset's suggested alpha).
	DefaultAlpha = 1.0
)

// Plan is what a steered run steers with and how: the one typed form the
// TUI, the CLI, sessions and exports share. Zero values mean the defaults:
// method mean, layer auto, alpha auto, constant schedule, scope all, mode
// residual.
type Plan struct {
	// Preset names a shipped persona preset (its vector is computed on first
	// use and cached); Vector is a control-vector file instead. Exactly one
	// is set.
	Preset string `json:"preset,omitempty"`
	Vector string `json:"vector,omitempty"`
	// Method makes a preset's vector: mean or pca.
	Method Method `json:"method,omitempty"`
	// Layer is the steered block in genkit's convention: the output of
	// block Layer (0-based; negative counts from the end). nil is auto: the
	// preset's suggested layer, or every layer a vector file holds.
	Layer *int `json:"layer,omitempty"`
	// Alpha is the strength; nil is auto: the preset's suggested alpha, or
	// DefaultAlpha for a vector file.
	Alpha *float64 `json:"alpha,omitempty"`
	// Schedule varies alpha over the steps. A ramp's end points are absolute
	// strengths, so under a ramp Alpha has no effect.
	Schedule Schedule `json:"schedule"`
	// Scope says which positions are steered (residual mode).
	Scope Scope `json:"scope,omitempty"`
	// Mode is residual or logit-bias.
	Mode Mode `json:"mode,omitempty"`
	// Normalize keeps each steered position's norm (residual mode).
	Normalize bool `json:"normalize,omitempty"`
	// FinalNorm applies the model's final norm to v before W_U (logit-bias
	// mode).
	FinalNorm bool `json:"final_norm,omitempty"`
}

// DefaultPlan is the plan of a new session: the default preset with every
// other field auto or default.
func DefaultPlan() Plan {
	return Plan{Preset: DefaultPreset, Method: MethodMean, Schedule: Constant, Scope: ScopeAll, Mode: ModeResidual}
}

// AlphaMatters reports whether Alpha changes anything under the plan's
// schedule (a ramp sets absolute strengths).
func (p Plan) AlphaMatters() bool { return p.Schedule.Kind != "ramp" }

// EffectiveAlpha is the strength the plan steers with: Alpha when set, else
// the preset's suggestion, else DefaultAlpha.
func (p Plan) EffectiveAlpha() float64 {
	if p.Alpha != nil {
		return *p.Alpha
	}
	if p.Preset != "" {
		if pr, err := PresetByName(p.Preset); err == nil {
			return pr.Alpha
		}
	}
	return DefaultAlpha
}

// AutoLayer is the block an auto layer resolves to for a model of n blocks
// when the plan has a preset (its suggestion); false for a vector file (auto
// means the file's own layers).
func (p Plan) AutoLayer(n int) (int, bool) {
	if p.Preset == "" {
		return 0, false
	}
	pr, err := PresetByName(p.Preset)
	if err != nil {
		return 0, false
	}
	return pr.Layer(n), true
}

// Validate checks every field that does not need a model, naming the bad
// field.
func (p Plan) Validate() error {
	switch {
	case p.Preset != "" && p.Vector != "":
		return fmt.Errorf("steering: give a preset or a vector file, not both (preset %q, vector %q)", p.Preset, p.Vector)
	case p.Preset == "" && p.Vector == "":
		return fmt.Errorf("steering: choose a preset or a vector file to steer with")
	}
	if p.Preset != "" {
		if _, err := PresetByName(p.Preset); err != nil {
			return fmt.Errorf("steering.preset: %w", err)
		}
	}
	if _, err := ParseMethod(string(p.Method)); err != nil {
		return fmt.Errorf("steering.method: %w", err)
	}
	if _, err := ParseMode(string(p.Mode)); err != nil {
		return fmt.Errorf("steering.mode: %w", err)
	}
	if _, err := ParseScope(string(p.Scope)); err != nil {
		return fmt.Errorf("steering.scope: %w", err)
	}
	if _, err := ParseSchedule(p.Schedule.String()); err != nil || !knownSchedule(p.Schedule.Kind) {
		if err == nil {
			err = fmt.Errorf("schedule kind %q: want constant, warmup, ramp or window", p.Schedule.Kind)
		}
		return fmt.Errorf("steering.schedule: %w", err)
	}
	if p.Alpha != nil {
		if err := CheckAlpha(*p.Alpha); err != nil {
			return fmt.Errorf("steering.alpha: %w", err)
		}
	}
	if p.Schedule.Kind == "ramp" {
		for _, a := range []float64{p.Schedule.From, p.Schedule.To} {
			if err := CheckAlpha(a); err != nil {
				return fmt.Errorf("steering.schedule: ramp end point: %w", err)
			}
		}
	}
	return nil
}

// MaxAlpha bounds a steering strength: |alpha| <= MaxAlpha. Useful
// strengths are a few units to a few tens (a unit vector's alpha is in the
// hidden state's own scale, norms of tens to hundreds); beyond 1e4 the
// hidden state is the vector alone and float32 activations near overflow.
const MaxAlpha = 1e4

// CheckAlpha is the rule for a steering strength (an alpha or a ramp's end
// point): a finite number with |a| <= MaxAlpha. Callers prefix the flag,
// field or control that set it.
func CheckAlpha(a float64) error {
	if !finite(a) {
		return fmt.Errorf("%v is not a finite number", a)
	}
	if math.Abs(a) > MaxAlpha {
		return fmt.Errorf("%v is outside [-%g, %g]", a, float64(MaxAlpha), float64(MaxAlpha))
	}
	return nil
}

// ClampAlpha brings any value into CheckAlpha's range: NaN becomes 0, and
// everything else (infinities included) is clamped to ±MaxAlpha. Controls
// that step alpha use it, so a step always lands on a valid strength.
func ClampAlpha(a float64) float64 {
	if math.IsNaN(a) {
		return 0
	}
	return math.Max(-MaxAlpha, math.Min(MaxAlpha, a))
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

func knownSchedule(kind string) bool {
	switch kind {
	case "", "constant", "warmup", "ramp", "window":
		return true
	}
	return false
}

// Source names what the plan steers with, for display.
func (p Plan) Source() string {
	if p.Preset != "" {
		return p.Preset
	}
	return p.Vector
}

// Resolved is a plan resolved against a model: the layers, the alpha and
// the vectors it steers with.
type Resolved struct {
	// Plan is the plan as given.
	Plan Plan
	// Mode is the plan's mode (parsed).
	Mode Mode
	// Layers are the steered blocks (0-based, ascending); Layer is the first.
	Layers []int
	Layer  int
	// Alpha is the strength in force.
	Alpha float64
	// Vectors maps each steered block to its vector.
	Vectors map[int][]float32
	// Separation is a preset's per-layer separation (nil for a file).
	Separation map[int]float64
}

// Vector is the vector of the first steered layer.
func (r *Resolved) Vector() []float32 { return r.Vectors[r.Layer] }

// Resolve validates p and resolves it against m: a preset's vector is
// computed (or read from the cache) with progress reports, a file is read;
// auto layer and alpha are filled in. It enters the MLX thread itself.
func Resolve(ctx context.Context, m *engine.Model, p Plan, progress func(done, total int)) (*Resolved, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	mode, _ := ParseMode(string(p.Mode))
	r := &Resolved{Plan: p, Mode: mode, Alpha: DefaultAlpha}
	var vectors map[int][]float32
	var layer *int
	if p.Layer != nil {
		l, err := ResolveLayer(m, *p.Layer)
		if err != nil {
			return nil, fmt.Errorf("steering.layer: %w", err)
		}
		layer = &l
	}
	if p.Preset != "" {
		pr, err := PresetByName(p.Preset)
		if err != nil {
			return nil, fmt.Errorf("steering.preset: %w", err)
		}
		method, _ := ParseMethod(string(p.Method))
		ex, err := PresetVectors(ctx, m, pr, method, progress)
		if err != nil {
			return nil, err
		}
		vectors, r.Separation = ex.Vectors, ex.Separation
		if layer == nil {
			l := pr.Layer(m.NumLayers())
			layer = &l
		}
	} else {
		fileLayer := 0
		if layer != nil {
			fileLayer = *layer
		}
		// On a sharded model rank 0 reads the file for every rank.
		vs, err := rankZeroRead(m, "steering.vector "+p.Vector, func() (*VectorSet, error) {
			var vs *VectorSet
			err := mlx.Do(context.Background(), func() error {
				var err error
				vs, err = LoadVectors(p.Vector, fileLayer)
				return err
			})
			return vs, err
		})
		if err != nil {
			return nil, fmt.Errorf("steering.vector: %w", err)
		}
		if err := vs.Check(m.HiddenSize()); err != nil {
			return nil, fmt.Errorf("steering.vector %s: %w", p.Vector, err)
		}
		vectors = vs.Vectors
		if layer == nil && len(vectors) == 1 {
			for l := range vectors {
				ll, err := ResolveLayer(m, l)
				if err != nil {
					return nil, fmt.Errorf("steering.vector %s: %w", p.Vector, err)
				}
				layer = &ll
			}
		}
		if layer != nil && len(vectors) == 1 {
			// One vector without a matching layer steers the chosen block.
			for _, v := range vectors {
				vectors = map[int][]float32{*layer: v}
			}
		}
	}
	r.Alpha = p.EffectiveAlpha()
	if layer != nil {
		v, ok := vectors[*layer]
		if !ok {
			return nil, fmt.Errorf("steering.layer: %s has no vector for layer %d (it has %v)", p.Source(), *layer, (&VectorSet{Vectors: vectors}).Layers())
		}
		vectors = map[int][]float32{*layer: v}
	}
	r.Vectors = map[int][]float32{}
	for l, v := range vectors {
		rl, err := ResolveLayer(m, l)
		if err != nil {
			return nil, fmt.Errorf("steering.vector %s: %w", p.Source(), err)
		}
		r.Vectors[rl] = v
		r.Layers = append(r.Layers, rl)
	}
	sortInts(r.Layers)
	r.Layer = r.Layers[0]
	if mode == ModeLogitBias && len(r.Layers) > 1 {
		return nil, fmt.Errorf("steering.layer: logit-bias steering takes one vector: choose a layer (%s has %v)", p.Source(), r.Layers)
	}
	if mode == ModeResidual && m.NumLayers() == 0 {
		return nil, fmt.Errorf("steering.mode: the model has no decoder block to steer: use logit-bias")
	}
	return r, nil
}

func sortInts(xs []int) {
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && xs[j] < xs[j-1]; j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
}

// Build makes the steering of a resolved plan for lanes with the given
// alpha multipliers (0 leaves a lane unsteered; nil: lane 0 base, the
// others steered). It enters the MLX thread itself; Free releases it.
func (r *Resolved) Build(m *engine.Model, laneScales []float64) (Steer, error) {
	var st Steer
	err := mlx.Do(context.Background(), func() error {
		switch r.Mode {
		case ModeLogitBias:
			dir, err := UnembedVector(m, r.Vector(), r.Plan.FinalNorm)
			if err != nil {
				return err
			}
			st.Bias = &LogitBias{Direction: dir, Alpha: r.Alpha, Schedule: r.Plan.Schedule}
			st.laneScales = laneScales
			return nil
		default:
			scope, _ := ParseScope(string(r.Plan.Scope))
			inj, err := NewInjection(m, r.Vectors, InjectionOptions{Alpha: r.Alpha, Schedule: r.Plan.Schedule, Scope: scope,
				LaneScale: laneScales, Normalize: r.Plan.Normalize})
			st.Injection = inj
			return err
		}
	})

	return st, err
}

// Describe is a one-line summary of the resolved plan.
func (r *Resolved) Describe() string {
	s := fmt.Sprintf("%s, layer %d, alpha %g, %s", r.Plan.Source(), r.Layer, r.Alpha, r.Mode)
	if len(r.Layers) > 1 {
		s = fmt.Sprintf("%s, layers %v, alpha %g, %s", r.Plan.Source(), r.Layers, r.Alpha, r.Mode)
	}
	if k := r.Plan.Schedule.Kind; k != "" && k != "constant" {
		s += ", " + r.Plan.Schedule.String()
	}
	return s
}

// MarshalJSON writes the schedule as its SPEC string (what ParseSchedule
// and the --schedule flag read).
func (s Schedule) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// VectorSet is the resolved plan's vectors, every steered block, with m's
// architecture as the model hint.
func (r *Resolved) VectorSet(m *engine.Model) *VectorSet {
	return &VectorSet{Vectors: r.Vectors, ModelHint: m.Config.Architecture}
}

// SaveVector writes every steered block's vector to path (a .gguf is a
// llama.cpp control vector: VectorSet.Save); it enters the MLX thread
// itself.
func (r *Resolved) SaveVector(m *engine.Model, path string) error {
	return r.VectorSet(m).Save(path)
}
