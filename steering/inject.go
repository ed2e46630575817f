package steering

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
)

// Scope says which positions are steered.
type Scope string

// The scopes. ScopeGenerated steers the last position of every forward pass:
// the last prompt token (whose output picks the first new token), then each
// new token, so every generated token is steered.
const (
	ScopeAll       Scope = "all"
	ScopePrompt    Scope = "prompt"
	ScopeGenerated Scope = "generated"
)

// ParseScope reads all, prompt or generated.
func ParseScope(s string) (Scope, error) {
	switch Scope(s) {
	case ScopeAll, ScopePrompt, ScopeGenerated:
		return Scope(s), nil
	case "":
		return ScopeAll, nil
	}
	return "", fmt.Errorf("steering scope %q: want all, prompt or generated", s)
}

// Injection adds alpha(t) * v to the output of decoder blocks, on the
// steered lanes only. It implements engine.Hook; its methods run on the MLX
// thread.
type Injection struct {
	vectors  map[int]*mlx.Array // block index -> [D] in the model's dtype
	alpha    float64
	schedule Schedule
	scope    Scope
	// laneScale multiplies alpha per lane: 0 leaves a lane untouched (the
	// base lane), 1 steers it, other values make an alpha sweep.
	laneScale []float64
	normalize bool
	maxRatio  float64
	// Monitoring: the projection of each lane's last hidden state at the
	// first steered block on that block's unit vector, per forward pass.
	monitor    int
	unit       *mlx.Array
	projection *mlx.Array
	// coef caches the last per-lane, per-position coefficients [B, L, 1] in
	// the hidden states' dtype: a decode step usually needs the same ones as
	// the step before (constant schedule), and reusing the array spares a
	// host-to-device copy per step, which on a GPU stalls the pipelined loop.
	coef       *mlx.Array
	coefValues []float32
	coefShape  [2]int
	coefDtype  mlx.Dtype
}

// InjectionOptions configure an Injection.
type InjectionOptions struct {
	Alpha    float64
	Schedule Schedule
	Scope    Scope
	// LaneScale gives each lane's multiplier of alpha (nil: lane 0 is the
	// base and every other lane is steered with alpha).
	LaneScale []float64
	// Normalize rescales each steered position back to its norm before
	// steering (repeng's normalize=True).
	Normalize bool
	// MaxRatio refuses steering whose added vector is more than this many
	// times the residual stream's mean norm at the layer (checked on the
	// prompt's first forward): the output would be noise. 0 means 1000;
	// negative disables the check.
	MaxRatio float64
}

// ErrTooStrong is returned (wrapped) when alpha * |v| dwarfs the residual
// stream, as with an alpha of 1e6.
var ErrTooStrong = errors.New("steering too strong")

// NewInjection builds an injection for m from per-layer vectors (negative
// layers count from the end). The vectors are copied in the model's dtype.
func NewInjection(m *engine.Model, vectors map[int][]float32, opts InjectionOptions) (*Injection, error) {
	if len(vectors) == 0 {
		return nil, fmt.Errorf("steering: no vectors")
	}
	scope := opts.Scope
	if scope == "" {
		scope = ScopeAll
	}
	inj := &Injection{vectors: map[int]*mlx.Array{}, alpha: opts.Alpha, schedule: opts.Schedule, scope: scope,
		laneScale: opts.LaneScale, normalize: opts.Normalize, maxRatio: opts.MaxRatio, monitor: math.MaxInt}
	if inj.maxRatio == 0 {
		inj.maxRatio = 1000
	}
	for layer, v := range vectors {
		l, err := ResolveLayer(m, layer)
		if err != nil {
			inj.Free()
			return nil, err
		}
		if err := CheckVector(v, m.HiddenSize()); err != nil {
			inj.Free()
			return nil, fmt.Errorf("layer %d: %w", layer, err)
		}
		a, err := mlx.FromFloat32s(v)
		if err == nil && m.DType != mlx.Float32 {
			var c *mlx.Array
			c, err = mlx.AsType(a, m.DType)
			a.Free()
			a = c
		}
		if err != nil {
			inj.Free()
			return nil, err
		}
		inj.vectors[l] = a
		inj.monitor = min(inj.monitor, l)
	}
	u := unitVector(vectors, inj.monitor, m)
	var err error
	if inj.unit, err = mlx.FromFloat32s(u); err != nil {
		inj.Free()
		return nil, err
	}
	return inj, nil
}

func unitVector(vectors map[int][]float32, layer int, m *engine.Model) []float32 {
	for l, v := range vectors {
		if r, _ := ResolveLayer(m, l); r == layer {
			var n float64
			for _, x := range v {
				n += float64(x) * float64(x)
			}
			n = math.Sqrt(n)
			out := make([]float32, len(v))
			for i, x := range v {
				if n > 0 {
					out[i] = float32(float64(x) / n)
				}
			}
			return out
		}
	}
	return nil
}

// ResolveLayer maps a possibly negative layer index to [0, layers).
func ResolveLayer(m *engine.Model, layer int) (int, error) {
	n := m.NumLayers()
	l := layer
	if l < 0 {
		l += n
	}
	if l < 0 || l >= n {
		return 0, fmt.Errorf("steering layer %d outside the model's %d blocks (use 0..%d or -1..-%d)", layer, n, n-1, n)
	}
	return l, nil
}

// CheckVector refuses vectors of the wrong size or with NaN/Inf values.
func CheckVector(v []float32, hidden int) error {
	if len(v) != hidden {
		return fmt.Errorf("steering vector has %d values, the model's hidden size is %d", len(v), hidden)
	}
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("steering vector value %d is %v", i, x)
		}
	}
	return nil
}

// Free releases the vectors.
func (inj *Injection) Free() {
	for _, v := range inj.vectors {
		v.Free()
	}
	inj.vectors = nil
	mlx.Free(inj.unit, inj.projection, inj.coef)
	inj.unit, inj.projection, inj.coef = nil, nil, nil
}

// SetAlpha changes the base strength (between generations).
func (inj *Injection) SetAlpha(a float64) { inj.alpha = a }

// Layers lists the steered blocks.
func (inj *Injection) Layers() []int {
	var out []int
	for l := range inj.vectors {
		out = append(out, l)
	}
	return out
}

func (inj *Injection) scale(lane int) float64 {
	if inj.laneScale == nil {
		if lane == 0 {
			return 0
		}
		return 1
	}
	if lane < len(inj.laneScale) {
		return inj.laneScale[lane]
	}
	return 0
}

// positions marks which of the L positions of this forward are steered.
func (inj *Injection) positions(step engine.Step) []float32 {
	pos := make([]float32, step.Len)
	switch inj.scope {
	case ScopeAll:
		for i := range pos {
			pos[i] = 1
		}
	case ScopePrompt:
		if step.Prefill {
			for i := range pos {
				pos[i] = 1
			}
		}
	case ScopeGenerated:
		if !step.Prefill {
			for i := range pos {
				pos[i] = 1
			}
		} else if step.PromptLen == 0 || step.Offset+step.Len == step.PromptLen {
			pos[step.Len-1] = 1 // the last prompt position
		}
	}
	return pos
}

// AfterBlock implements engine.Hook.
func (inj *Injection) AfterBlock(s *mlx.Scope, layer int, h *mlx.Array, step engine.Step) (*mlx.Array, error) {
	if layer == inj.monitor {
		if err := inj.measure(s, h); err != nil {
			return nil, err
		}
	}
	v, ok := inj.vectors[layer]
	if !ok {
		return h, nil
	}
	a := inj.schedule.Alpha(inj.alpha, step.Index)
	sh := h.Shape()
	B, L := sh[0], sh[1]
	pos := inj.positions(step)
	coef := make([]float32, B*L)
	any := false
	for b := 0; b < B; b++ {
		k := a * inj.scale(b)
		for l := 0; l < L; l++ {
			coef[b*L+l] = float32(k) * pos[l]
			any = any || coef[b*L+l] != 0
		}
	}
	if !any {
		return h, nil
	}
	if step.Prefill && step.Offset == 0 && inj.maxRatio > 0 {
		if err := inj.checkStrength(s, layer, h, v, a); err != nil {
			return nil, err
		}
	}
	c, err := inj.coefficients(coef, B, L, h.Dtype())
	if err != nil {
		return nil, err
	}
	out := s.Track(mlx.Add(h, s.Track(mlx.Multiply(c, v))))
	if inj.normalize {
		before := s.Track(mlx.Sqrt(s.Track(mlx.Sum(s.Track(mlx.Square(h)), true, -1))))
		after := s.Track(mlx.Sqrt(s.Track(mlx.Sum(s.Track(mlx.Square(out)), true, -1))))
		out = s.Track(mlx.Multiply(out, s.Track(mlx.Divide(before, after))))
	}
	return out, s.Err()
}

// coefficients returns coef as an array [B, L, 1] of dtype dt, reusing the
// cached one when the values are the same (the injection owns it).
func (inj *Injection) coefficients(coef []float32, B, L int, dt mlx.Dtype) (*mlx.Array, error) {
	if inj.coef != nil && inj.coefShape == [2]int{B, L} && inj.coefDtype == dt && slices.Equal(inj.coefValues, coef) {
		return inj.coef, nil
	}
	c, err := mlx.FromFloat32s(coef, B, L, 1)
	if err == nil && dt != mlx.Float32 {
		var cast *mlx.Array
		cast, err = mlx.AsType(c, dt)
		c.Free()
		c = cast
	}
	if err != nil {
		return nil, err
	}
	inj.coef.Free()
	inj.coef, inj.coefValues, inj.coefShape, inj.coefDtype = c, append(inj.coefValues[:0], coef...), [2]int{B, L}, dt
	return c, nil
}

// checkStrength compares |alpha * v| with the median norm of h's positions
// (the median, because a few positions such as the first token carry
// outsized norms).
func (inj *Injection) checkStrength(s *mlx.Scope, layer int, h, v *mlx.Array, alpha float64) error {
	hn := s.Track(mlx.Sqrt(s.Track(mlx.Sum(s.Track(mlx.Square(s.Track(mlx.AsType(h, mlx.Float32)))), false, -1))))
	vn := s.Track(mlx.Sqrt(s.Track(mlx.Sum(s.Track(mlx.Square(s.Track(mlx.AsType(v, mlx.Float32)))), false))))
	if err := s.Err(); err != nil {
		return err
	}
	norms, err := hn.Float32s()
	if err != nil {
		return err
	}
	vv, err := vn.Item()
	if err != nil {
		return err
	}
	sort.Slice(norms, func(i, j int) bool { return norms[i] < norms[j] })
	hv := float64(norms[len(norms)/2])
	added := math.Abs(alpha) * vv
	if math.IsNaN(hv) || math.IsInf(hv, 0) {
		return fmt.Errorf("%w: the hidden states at layer %d are not finite", ErrTooStrong, layer)
	}
	if hv > 0 && added/hv > inj.maxRatio {
		return fmt.Errorf("%w: alpha %g makes the added vector (norm %.3g) %.3g times the residual stream's median norm (%.3g) at layer %d; the output would be noise, lower alpha (ratios near 1 already steer hard)",
			ErrTooStrong, alpha, added, added/hv, hv, layer)
	}
	return nil
}

// measure records the projection of each lane's last hidden state on the
// monitored unit vector.
func (inj *Injection) measure(s *mlx.Scope, h *mlx.Array) error {
	sh := h.Shape()
	last := s.Track(mlx.Slice(h, []int{0, sh[1] - 1, 0}, []int{sh[0], sh[1], sh[2]}, nil))
	x := s.Track(mlx.AsType(s.Track(mlx.Reshape(last, sh[0], sh[2])), mlx.Float32))
	p, err := mlx.Matmul(x, s.Track(mlx.Reshape(inj.unit, sh[2], 1)))
	if err != nil {
		return err
	}
	inj.projection.Free()
	inj.projection = p
	return s.Err()
}

// Projections returns, per lane, the projection of the last position's
// hidden state at the first steered block (before steering) on that block's
// unit vector, from the latest forward pass; nil before the first.
func (inj *Injection) Projections() ([]float32, error) {
	if inj.projection == nil {
		return nil, nil
	}
	return inj.projection.Float32s()
}
