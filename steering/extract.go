package steering

import (
	"context"
	"fmt"
	"math"
	"sort"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
)

// Pair is one contrastive example: the same content with and without the
// persona.
type Pair struct {
	Positive, Negative []int // token ids
}

// Method is how per-layer directions are made from the pairs.
type Method string

// The methods: the difference of the two sides' means (default, keeps its
// own scale), or the first principal direction of the paired differences
// (unit norm, sign fixed so positives project higher in most pairs).
const (
	MethodMean Method = "mean"
	MethodPCA  Method = "pca"
)

// ParseMethod reads mean or pca.
func ParseMethod(s string) (Method, error) {
	switch Method(s) {
	case MethodMean, "":
		return MethodMean, nil
	case MethodPCA:
		return MethodPCA, nil
	}
	return "", fmt.Errorf("vector method %q: want mean or pca", s)
}

// ExtractOptions control Extract.
type ExtractOptions struct {
	Method Method
	// ResponseTokens > 0 reads the mean hidden state over that many greedy
	// response tokens generated after each prompt; 0 reads the last prompt
	// token.
	ResponseTokens int
	// Batch is how many texts go through the model at once (0: 8).
	Batch int
	// Progress, when set, is called after each batch with texts done/total.
	// It stays on the rank that set it (a lockstep job carries the rest).
	Progress func(done, total int) `json:"-"`
}

// Extraction holds per-layer directions and how well each layer separates
// the two sides.
type Extraction struct {
	Vectors map[int][]float32
	// Separation is, per layer, the gap between the sides' mean projections
	// on the unit direction divided by their pooled standard deviation.
	Separation map[int]float64
}

// BestLayer is the layer with the highest separation.
func (e *Extraction) BestLayer() int {
	best, bs := -1, math.Inf(-1)
	for _, l := range e.Layers() {
		if e.Separation[l] > bs {
			best, bs = l, e.Separation[l]
		}
	}
	return best
}

// Layers lists the layers, ascending.
func (e *Extraction) Layers() []int {
	var out []int
	for l := range e.Vectors {
		out = append(out, l)
	}
	sort.Ints(out)
	return out
}

// Extract captures the hidden states of every pair at every block and makes
// one direction per block. It is deterministic.
func Extract(ctx context.Context, m *engine.Model, pairs []Pair, opts ExtractOptions) (*Extraction, error) {
	if len(pairs) == 0 {
		return nil, fmt.Errorf("vector: no contrastive pairs")
	}
	method := opts.Method
	if method == "" {
		method = MethodMean
	}
	var texts [][]int
	for _, p := range pairs {
		if len(p.Positive) == 0 || len(p.Negative) == 0 {
			return nil, fmt.Errorf("vector: an empty prompt in the contrastive pairs")
		}
		texts = append(texts, p.Positive, p.Negative)
	}
	if opts.ResponseTokens > 0 {
		var err error
		if texts, err = withResponses(ctx, m, texts, opts.ResponseTokens); err != nil {
			return nil, err
		}
	}
	reads, err := readHidden(ctx, m, texts, opts)
	if err != nil {
		return nil, err
	}
	// reads[i][layer] is text i's reading at that layer.
	out := &Extraction{Vectors: map[int][]float32{}, Separation: map[int]float64{}}
	D := m.HiddenSize()
	bestGap, bestLayer := -1.0, 0
	for l := 0; l < m.NumLayers(); l++ {
		pos := make([][]float64, len(pairs))
		neg := make([][]float64, len(pairs))
		for i := range pairs {
			pos[i], neg[i] = reads[2*i][l], reads[2*i+1][l]
		}
		if g := relativeGap(pos, neg, D); g > bestGap {
			bestGap, bestLayer = g, l
		}
		var v []float64
		switch method {
		case MethodPCA:
			v = pcaDirection(pos, neg, D)
		default:
			v = meanDiff(pos, neg, D)
		}
		f := make([]float32, D)
		for i := range v {
			f[i] = float32(v[i])
		}
		out.Vectors[l] = f
		out.Separation[l] = separation(pos, neg, v)
	}
	if bestGap < MinRelativeGap {
		return nil, fmt.Errorf("vector: the positive and negative texts do not separate: at the best layer (%d) the sides' mean hidden states differ by %.3g of their norm (separation %.3g), below %g: are the two sides the same texts?",
			bestLayer, bestGap, out.Separation[bestLayer], MinRelativeGap)
	}
	return out, nil
}

// MinRelativeGap is the smallest difference between the two sides' mean
// hidden states, relative to the states' mean norm, that Extract makes a
// vector from at some layer; below it at every layer (the same texts on
// both sides, say) the direction would be zero or rounding noise.
const MinRelativeGap = 1e-4

// relativeGap is the norm of the mean difference between the sides
// divided by the mean norm of all their hidden states (0 when both are 0).
func relativeGap(pos, neg [][]float64, D int) float64 {
	diff := meanDiff(pos, neg, D)
	gap := math.Sqrt(dot(diff, diff))
	var scale float64
	for _, side := range [][][]float64{pos, neg} {
		for _, x := range side {
			scale += math.Sqrt(dot(x, x)) / float64(2*len(pos))
		}
	}
	if scale == 0 {
		return 0
	}
	return gap / scale
}

// withResponses appends a greedy continuation to every text.
func withResponses(ctx context.Context, m *engine.Model, texts [][]int, n int) ([][]int, error) {
	out := make([][]int, len(texts))
	for i, t := range texts {
		res, _, err := m.Generate(ctx, engine.Request{Prompt: t, MaxNewTokens: n, IgnoreEOS: true})
		if err != nil {
			return nil, fmt.Errorf("vector: response %d: %w", i, err)
		}
		out[i] = append(append([]int(nil), t...), res[0].Tokens...)
	}
	return out, nil
}

// readHidden returns, per text and layer, the hidden state at the last
// position (or averaged over the last ResponseTokens positions).
func readHidden(ctx context.Context, m *engine.Model, texts [][]int, opts ExtractOptions) ([]map[int][]float64, error) {
	batch := opts.Batch
	if batch <= 0 {
		batch = 8
	}
	avg := max(opts.ResponseTokens, 1)
	layers := make([]int, m.NumLayers())
	for i := range layers {
		layers[i] = i
	}
	D := m.HiddenSize()
	out := make([]map[int][]float64, len(texts))
	for start := 0; start < len(texts); start += batch {
		if err := m.Stopped(ctx); err != nil {
			return nil, err
		}
		group := texts[start:min(start+batch, len(texts))]
		L := 0
		for _, t := range group {
			L = max(L, len(t))
		}
		ids := make([]int32, 0, len(group)*L)
		pads := make([]int, len(group))
		for b, t := range group {
			pads[b] = L - len(t)
			for i := 0; i < pads[b]; i++ {
				ids = append(ids, 0)
			}
			for _, id := range t {
				ids = append(ids, int32(id))
			}
		}
		err := mlx.Do(m.WorkContext(ctx), func() error {
			x, err := mlx.FromInt32s(ids, len(group), L)
			if err != nil {
				return err
			}
			defer x.Free()
			cache := m.NewCache(len(group))
			defer cache.Free()
			res, err := m.Forward(x, cache, engine.ForwardOptions{Capture: layers, Padding: pads, NoLogits: true})
			if err != nil {
				return err
			}
			defer res.Free()
			for _, l := range layers {
				h, err := res.Hidden[l].Float32s()
				if err != nil {
					return err
				}
				for b := range group {
					acc := make([]float64, D)
					for p := L - avg; p < L; p++ {
						row := h[(b*L+p)*D : (b*L+p+1)*D]
						for i, v := range row {
							acc[i] += float64(v) / float64(avg)
						}
					}
					if out[start+b] == nil {
						out[start+b] = map[int][]float64{}
					}
					out[start+b][l] = acc
				}
			}
			return nil
		})

		if err != nil {
			return nil, fmt.Errorf("vector: %w", err)
		}
		if opts.Progress != nil {
			opts.Progress(min(start+batch, len(texts)), len(texts))
		}
	}
	return out, nil
}

func meanDiff(pos, neg [][]float64, D int) []float64 {
	v := make([]float64, D)
	for i := range pos {
		for j := 0; j < D; j++ {
			v[j] += (pos[i][j] - neg[i][j]) / float64(len(pos))
		}
	}
	return v
}

// pcaDirection is the first right singular vector of the matrix of paired
// differences (uncentred), by power iteration from the mean difference;
// unit norm, signed so that most pairs' positives project higher.
func pcaDirection(pos, neg [][]float64, D int) []float64 {
	diffs := make([][]float64, len(pos))
	for i := range pos {
		diffs[i] = make([]float64, D)
		for j := 0; j < D; j++ {
			diffs[i][j] = pos[i][j] - neg[i][j]
		}
	}
	v := meanDiff(pos, neg, D)
	if normalize(v) == 0 {
		v[0] = 1
	}
	for it := 0; it < 200; it++ {
		next := make([]float64, D)
		for _, d := range diffs {
			p := dot(d, v)
			for j := range next {
				next[j] += p * d[j]
			}
		}
		if normalize(next) == 0 {
			break
		}
		delta := 0.0
		for j := range v {
			delta = math.Max(delta, math.Abs(next[j]-v[j]))
		}
		v = next
		if delta < 1e-10 {
			break
		}
	}
	higher := 0
	for _, d := range diffs {
		if dot(d, v) > 0 {
			higher++
		}
	}
	if 2*higher < len(diffs) {
		for j := range v {
			v[j] = -v[j]
		}
	}
	return v
}

func separation(pos, neg [][]float64, v []float64) float64 {
	u := append([]float64(nil), v...)
	if normalize(u) == 0 {
		return 0
	}
	mp, vp := meanVar(pos, u)
	mn, vn := meanVar(neg, u)
	return (mp - mn) / math.Sqrt((vp+vn)/2+1e-12)
}

func meanVar(xs [][]float64, u []float64) (float64, float64) {
	var s, ss float64
	for _, x := range xs {
		p := dot(x, u)
		s += p
		ss += p * p
	}
	n := float64(len(xs))
	m := s / n
	return m, math.Max(ss/n-m*m, 0)
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func normalize(v []float64) float64 {
	n := math.Sqrt(dot(v, v))
	if n > 0 {
		for i := range v {
			v[i] /= n
		}
	}
	return n
}
