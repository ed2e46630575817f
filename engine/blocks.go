package engine

import (
	"math"

	"github.com/mlx-genkit/genkit/mlx"
)

// The small functions decoder blocks are made of. Each family's block
// (arch_*.go) composes them; llamaBlock is the shared pre-norm block.

// pass is what one forward pass's blocks share: its shape, the cache, the
// positions and the attention masks.
type pass struct {
	B, L    int
	cache   *Cache
	padding []int
	// offsets are per-lane RoPE positions of the first token (left
	// padding); nil when every lane starts at the cache offset.
	offsets *mlx.Array
	// masks caches the additive mask per sliding window (0: none) in the
	// compute dtype; nil entries mean MLX's causal mode (or no mask).
	masks map[int]*mlx.Array
	dtype mlx.Dtype
	// flag is rank 0's stop decision [1] int32 to carry in block 0's
	// attention all-sum, and folded its sum, kept for the caller (tensor
	// parallelism's decode loops: ForwardOptions.flag).
	flag, folded *mlx.Array
}

// mask returns the additive attention mask for a layer with the given
// window (0 for none), or nil with the mode MLX's attention can build
// itself; explicit asks for the array even then (attention written out).
func (f *pass) mask(s *mlx.Scope, window int, explicit bool) (*mlx.Array, string) {
	end := f.cache.offset + f.L
	if window > 0 && end <= window {
		window = 0 // every key is inside the window
	}
	if f.padding == nil && window == 0 && (!explicit || f.L == 1) {
		if f.L > 1 {
			return nil, mlx.MaskCausal
		}
		return nil, mlx.MaskNone
	}
	if m, ok := f.masks[window]; ok {
		return m, mlx.MaskArray
	}
	m := s.Track(attentionMask(f.padding, f.B, f.cache.offset, f.L, window))
	if m != nil && f.dtype != mlx.Float32 {
		m = s.Track(mlx.AsType(m, f.dtype))
	}
	f.masks[window] = m
	return m, mlx.MaskArray
}

// attentionMask is an additive mask [B or 1, 1, L, offset+L]: -inf on left
// padding, on future positions and, with a window, on keys window or more
// positions behind the query (transformers' sliding window: key j is seen
// by query i when j > i - window). A padded query attends to itself only,
// so no row is all -inf.
func attentionMask(padding []int, B, offset, L, window int) (*mlx.Array, error) {
	rows := B
	if padding == nil {
		rows = 1
	}
	K := offset + L
	data := make([]float32, rows*L*K)
	neg := float32(math.Inf(-1))
	for b := 0; b < rows; b++ {
		pad := 0
		if padding != nil {
			pad = padding[b]
		}
		for i := 0; i < L; i++ {
			q := offset + i
			row := data[(b*L+i)*K : (b*L+i+1)*K]
			for j := range row {
				if q < pad && j != q || q >= pad && (j < pad || j > q || window > 0 && j <= q-window) {
					row[j] = neg
				}
			}
		}
	}
	return mlx.FromFloat32s(data, rows, 1, L, K)
}

// rmsNorm is the family's RMSNorm of x with weight w (nil: x unchanged).
// Gemma checkpoints scale by (1 + w); their weights are stored with the
// one added at load (see Model.build), so every family runs the same op.
func (m *Model) rmsNorm(s *mlx.Scope, x, w *mlx.Array) *mlx.Array {
	if w == nil || x == nil {
		return x
	}
	return s.Track(mlx.RMSNorm(x, w, float32(m.Config.RMSNormEps)))
}

// scaled multiplies x by a scalar in x's dtype; 0 and 1 leave it.
func scaled(s *mlx.Scope, x *mlx.Array, k float64) *mlx.Array {
	if k == 0 || k == 1 || x == nil {
		return x
	}
	c := s.Track(mlx.Scalar(k, x.Dtype()))
	return s.Track(mlx.Multiply(x, c))
}

// softcap returns cap * tanh(x / cap); cap 0 leaves x.
func softcap(s *mlx.Scope, x *mlx.Array, cap float64) *mlx.Array {
	if cap == 0 || x == nil {
		return x
	}
	x = scaled(s, x, 1/cap)
	return scaled(s, s.Track(mlx.Tanh(x)), cap)
}

// attention runs block i's self-attention on the normalised input x
// ([B, L, D]) and returns its output projection ([B, L, D]).
func (m *Model) attention(s *mlx.Scope, i int, x *mlx.Array, f *pass) *mlx.Array {
	if s.Err() != nil {
		return nil
	}
	cfg := m.Config
	b := m.layers[i]
	B, L := f.B, f.L
	H, Hkv := m.heads()
	hd := cfg.HeadDim
	var q, k, v *mlx.Array
	if b.qkv != nil {
		y := b.qkv.Apply(s, x)
		q = s.Track(mlx.Slice(y, []int{0, 0, 0}, []int{B, L, H * hd}, nil))
		k = s.Track(mlx.Slice(y, []int{0, 0, H * hd}, []int{B, L, (H + Hkv) * hd}, nil))
		v = s.Track(mlx.Slice(y, []int{0, 0, (H + Hkv) * hd}, []int{B, L, (H + 2*Hkv) * hd}, nil))
	} else {
		q, k, v = b.q.Apply(s, x), b.k.Apply(s, x), b.v.Apply(s, x)
	}
	if b.qNorm != nil && b.qNormFull {
		q, k = m.spanNorms(s, q, k, b.qNorm, b.kNorm, cfg.NumHeads*hd, cfg.NumKVHeads*hd)
	}
	q = s.Track(mlx.Reshape(q, B, L, H, hd))
	k = s.Track(mlx.Reshape(k, B, L, Hkv, hd))
	v = s.Track(mlx.Reshape(v, B, L, Hkv, hd))
	if b.qNorm != nil && !b.qNormFull {
		q, k = m.rmsNorm(s, q, b.qNorm), m.rmsNorm(s, k, b.kNorm)
	}
	q = s.Track(mlx.Transpose(q, 0, 2, 1, 3))
	k = s.Track(mlx.Transpose(k, 0, 2, 1, 3))
	v = s.Track(mlx.Transpose(v, 0, 2, 1, 3))
	spec := m.attn[i]
	q = m.rope(s, q, spec, f)
	k = m.rope(s, k, spec, f)
	if s.Err() != nil {
		return nil
	}
	kk, vv, err := f.cache.update(s, i, k, v)
	if err != nil {
		s.Fail(err)
		return nil
	}
	eager := cfg.AttnSoftcap != 0
	mask, mode := f.mask(s, spec.window, eager)
	var a *mlx.Array
	if eager {
		a = eagerAttention(s, q, kk, vv, cfg.AttentionScale(), cfg.AttnSoftcap, mask)
	} else {
		a = s.Track(mlx.ScaledDotProductAttention(q, kk, vv, cfg.AttentionScale(), mode, mask))
	}
	a = s.Track(mlx.Reshape(s.Track(mlx.Transpose(a, 0, 2, 1, 3)), B, L, H*hd))
	return m.reduceCarrying(s, f, b.o.Apply(s, a))
}

// eagerAttention is attention written out (scores, soft-capping, mask,
// float32 softmax, values) for what MLX's fused attention cannot do:
// q [B, H, L, hd], k and v [B, Hkv, K, hd] -> [B, H, L, hd]; mask is the
// additive mask (nil for a single query with nothing to hide).
func eagerAttention(s *mlx.Scope, q, k, v *mlx.Array, scale float32, cap float64, mask *mlx.Array) *mlx.Array {
	if s.Err() != nil {
		return nil
	}
	qs, ks := q.Shape(), k.Shape()
	B, H, L, hd := qs[0], qs[1], qs[2], qs[3]
	Hkv, K := ks[1], ks[2]
	rep := H / Hkv
	q5 := s.Track(mlx.Reshape(q, B, Hkv, rep, L, hd))
	k5 := s.Track(mlx.Reshape(k, B, Hkv, 1, K, hd))
	v5 := s.Track(mlx.Reshape(v, B, Hkv, 1, K, hd))
	w := s.Track(mlx.Matmul(q5, s.Track(mlx.SwapAxes(k5, -1, -2))))
	w = scaled(s, w, float64(scale))
	w = softcap(s, w, cap)
	if mask != nil {
		ms := mask.Shape() // [B or 1, 1, L, K]
		w = s.Track(mlx.Add(w, s.Track(mlx.Reshape(mask, ms[0], 1, 1, L, K))))
	}
	dt := w.Dtype()
	if dt != mlx.Float32 {
		w = s.Track(mlx.AsType(w, mlx.Float32))
	}
	w = s.Track(mlx.Softmax(w, -1, true))
	if dt != mlx.Float32 {
		w = s.Track(mlx.AsType(w, dt))
	}
	o := s.Track(mlx.Matmul(w, v5))
	return s.Track(mlx.Reshape(o, B, H, L, hd))
}

// mlp runs block i's feed-forward network on the normalised input x.
func (m *Model) mlp(s *mlx.Scope, i int, x *mlx.Array) *mlx.Array {
	if s.Err() != nil {
		return nil
	}
	b := m.layers[i]
	if b.moe != nil {
		return m.sparseMLP(s, b.moe, x)
	}
	var g, u *mlx.Array
	if b.gateUp != nil {
		y := b.gateUp.Apply(s, x)
		sh := y.Shape()
		F := b.gate.out
		g = s.Track(mlx.Slice(y, []int{0, 0, 0}, []int{sh[0], sh[1], F}, nil))
		u = s.Track(mlx.Slice(y, []int{0, 0, F}, []int{sh[0], sh[1], 2 * F}, nil))
	} else {
		g, u = b.gate.Apply(s, x), b.up.Apply(s, x)
	}
	g = m.activation(s, g)
	return m.reduce(s, b.down.Apply(s, s.Track(mlx.Multiply(g, u))))
}

// activation is the MLP gate's activation: SiLU, or GELU with the tanh
// approximation (gemma's gelu_pytorch_tanh).
func (m *Model) activation(s *mlx.Scope, x *mlx.Array) *mlx.Array {
	switch m.Config.HiddenAct {
	case "gelu_pytorch_tanh", "gelu_new", "gelu_fast":
		return geluTanh(s, x)
	}
	return s.Track(mlx.SiLU(x))
}

// geluTanh is 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
func geluTanh(s *mlx.Scope, x *mlx.Array) *mlx.Array {
	if x == nil {
		return nil
	}
	x3 := s.Track(mlx.Multiply(x, s.Track(mlx.Square(x))))
	inner := s.Track(mlx.Add(x, scaled(s, x3, 0.044715)))
	t := s.Track(mlx.Tanh(scaled(s, inner, math.Sqrt(2/math.Pi))))
	one := s.Track(mlx.Scalar(1, x.Dtype()))
	return scaled(s, s.Track(mlx.Multiply(x, s.Track(mlx.Add(one, t)))), 0.5)
}

// residual returns h + y·k (granite's residual_multiplier; k 0 is 1).
func residual(s *mlx.Scope, h, y *mlx.Array, k float64) *mlx.Array {
	if h == nil || y == nil {
		return nil
	}
	return s.Track(mlx.Add(h, scaled(s, y, k)))
}

// llamaBlock is the pre-norm block most families share:
// h + attn(norm(h)), then h + mlp(norm(h)).
func llamaBlock(m *Model, s *mlx.Scope, i int, h *mlx.Array, f *pass) *mlx.Array {
	b := m.layers[i]
	r := m.Config.ResidualMultiplier
	h = residual(s, h, m.attention(s, i, m.rmsNorm(s, h, b.attnNorm), f), r)
	return residual(s, h, m.mlp(s, i, m.rmsNorm(s, h, b.ffnNorm)), r)
}

// sandwichBlock has norms before and after each sublayer (gemma2, gemma3;
// olmo2 has only the after ones): h + post(attn(pre(h))), then
// h + post(mlp(pre(h))).
func sandwichBlock(m *Model, s *mlx.Scope, i int, h *mlx.Array, f *pass) *mlx.Array {
	b := m.layers[i]
	h = residual(s, h, m.rmsNorm(s, m.attention(s, i, m.rmsNorm(s, h, b.attnNorm), f), b.postAttnNorm), 0)
	return residual(s, h, m.rmsNorm(s, m.mlp(s, i, m.rmsNorm(s, h, b.ffnNorm)), b.postFFNNorm), 0)
}
