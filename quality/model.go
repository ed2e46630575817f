package quality

import (
	"context"
	"fmt"
	"math"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
)

// Reading is what the unsteered model makes of a text read as the answer to
// a prompt: the mean projection of block Layer's output on the persona
// direction over the text's tokens (how much the text itself reads as the
// persona to the model), and its perplexity (how fluent the model finds it).
//
// An empty text reads as the zero Reading.
type Reading struct {
	Projection float64 `json:"projection"`
	Perplexity float64 `json:"perplexity"`
}

// Reader reads texts through the unsteered model m: direction is the
// persona vector at block layer (normalised here).
type Reader struct {
	m     *engine.Model
	layer int
	unit  []float32
}

// newReader makes a Reader; direction must have the model's hidden size and
// a non-zero norm.
func newReader(m *engine.Model, layer int, direction []float32) (*Reader, error) {
	if layer < 0 || layer >= m.NumLayers() {
		return nil, fmt.Errorf("quality: layer %d outside [0, %d)", layer, m.NumLayers())
	}
	if len(direction) != m.HiddenSize() {
		return nil, fmt.Errorf("quality: direction has %d values, the model's hidden size is %d", len(direction), m.HiddenSize())
	}
	var n float64
	for _, x := range direction {
		n += float64(x) * float64(x)
	}
	if n == 0 || math.IsNaN(n) || math.IsInf(n, 0) {
		return nil, fmt.Errorf("quality: the persona direction has no usable norm")
	}
	n = math.Sqrt(n)
	unit := make([]float32, len(direction))
	for i, x := range direction {
		unit[i] = float32(float64(x) / n)
	}
	return &Reader{m: m, layer: layer, unit: unit}, nil
}

// read scores text (token ids) as the continuation of prompt (ids; at least
// one, so the first text token has a context). Runs on the MLX thread.
func (r *Reader) read(prompt, text []int) (Reading, error) {
	if len(prompt) == 0 {
		return Reading{}, fmt.Errorf("quality: read needs a prompt of at least one token")
	}
	if len(text) == 0 {
		return Reading{}, nil // nothing to read: perplexity 0 means none
	}
	ids := make([]int32, 0, len(prompt)+len(text))
	for _, id := range append(append([]int{}, prompt...), text...) {
		ids = append(ids, int32(id))
	}
	s := mlx.NewScope()
	defer s.Close()
	x := s.Track(mlx.FromInt32s(ids, 1, len(ids)))
	if err := s.Err(); err != nil {
		return Reading{}, err
	}
	cache := r.m.NewCache(1)
	defer cache.Free()
	res, err := r.m.Forward(x, cache, engine.ForwardOptions{Capture: []int{r.layer}})
	if err != nil {
		return Reading{}, err
	}
	defer res.Free()
	P, T, V, D := len(prompt), len(text), r.m.Config.VocabSize, r.m.HiddenSize()
	// Logits at positions P-1 .. P+T-2 predict the text's tokens.
	rows := s.Track(mlx.Slice(res.Logits, []int{0, P - 1, 0}, []int{1, P + T - 1, res.Logits.Dim(2)}, nil))
	lse := s.Track(mlx.LogSumExp(rows, false, -1))
	hid := s.Track(mlx.Slice(res.Hidden[r.layer], []int{0, P, 0}, []int{1, P + T, D}, nil))
	if err := s.Err(); err != nil {
		return Reading{}, err
	}
	if err := mlx.Eval(rows, lse, hid); err != nil {
		return Reading{}, err
	}
	logits, err := rows.Float32s()
	if err != nil {
		return Reading{}, err
	}
	norms, err := lse.Float32s()
	if err != nil {
		return Reading{}, err
	}
	h, err := hid.Float32s()
	if err != nil {
		return Reading{}, err
	}
	V = len(logits) / T
	var nll, proj float64
	for i, tok := range text {
		if tok < 0 || tok >= V {
			return Reading{}, fmt.Errorf("quality: token %d outside the vocabulary", tok)
		}
		nll += float64(norms[i]) - float64(logits[i*V+tok])
		var d float64
		for j := 0; j < D; j++ {
			d += float64(h[i*D+j]) * float64(r.unit[j])
		}
		proj += d
	}
	return Reading{Projection: proj / float64(T), Perplexity: math.Exp(nll / float64(T))}, nil
}

// NewReader makes a reader of m's block-layer output along direction (a
// persona vector) and of perplexity; it enters the MLX thread itself.
func NewReader(m *engine.Model, layer int, direction []float32) (*Reader, error) {
	return mlx.Call(context.Background(), func() (*Reader, error) { return newReader(m, layer, direction) })
}

// Read reads text as the answer to prompt (token ids); it enters the MLX
// thread itself.
func (r *Reader) Read(prompt, text []int) (Reading, error) {
	return mlx.Call(context.Background(), func() (Reading, error) { return r.read(prompt, text) })
}
