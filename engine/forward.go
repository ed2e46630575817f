package engine

import (
	"context"
	"fmt"
	"math"

	"github.com/mlx-genkit/genkit/mlx"
)

// ForwardOptions control one forward pass.
type ForwardOptions struct {
	// Hook sees every block's output; nil for none.
	Hook Hook
	// Step is passed to the hook (Offset and Len are filled in).
	Step Step
	// LastOnly returns logits for the last position only ([B, 1, V]).
	LastOnly bool
	// Capture lists blocks whose outputs (after the hook) are returned in
	// Result.Hidden, keyed by block index; -1 captures the embeddings.
	Capture []int
	// Padding gives, per lane, how many leading positions are padding (left
	// padding of prompts of different lengths); nil when none.
	Padding []int
	// NoLogits skips the final norm and the vocabulary projection.
	NoLogits bool
	// flag, under tensor parallelism, is a stop decision [1] int32 to
	// carry in block 0's attention all-sum; its sum is Result.flag.
	flag *mlx.Array
}

// Result is what a forward pass returns. Its arrays belong to the caller.
type Result struct {
	Logits *mlx.Array         // [B, L or 1, V] float32
	Hidden map[int]*mlx.Array // captured block outputs [B, L, D]
	flag   *mlx.Array         // the carried stop decision's sum [1] int32 (ForwardOptions.flag)
}

// Free releases the result's arrays.
func (r *Result) Free() {
	if r == nil {
		return
	}
	r.Logits.Free()
	r.flag.Free()
	for _, h := range r.Hidden {
		h.Free()
	}
}

// Forward runs tokens ([B, L] int32) through the model, appending their keys
// and values to cache, and returns float32 logits. Nothing is evaluated:
// callers evaluate what they need (see Eval).
func (m *Model) Forward(tokens *mlx.Array, cache *Cache, opts ForwardOptions) (*Result, error) {
	s := mlx.NewScope()
	defer s.Close()
	sh := tokens.Shape()
	if len(sh) != 2 {
		return nil, fmt.Errorf("forward: tokens must be [batch, length], got %v", sh)
	}
	B, L := sh[0], sh[1]
	if cache == nil {
		return nil, fmt.Errorf("forward: nil cache")
	}
	if opts.Padding != nil && len(opts.Padding) != B {
		return nil, fmt.Errorf("forward: %d padding entries for %d lanes", len(opts.Padding), B)
	}
	cfg := m.Config
	step := opts.Step
	step.Offset, step.Len = cache.offset, L
	capture := map[int]bool{}
	for _, c := range opts.Capture {
		if c < -1 || c >= len(m.layers) {
			return nil, fmt.Errorf("forward: capture layer %d outside [-1, %d)", c, len(m.layers))
		}
		capture[c] = true
	}
	res := &Result{Hidden: map[int]*mlx.Array{}}

	h := m.embed.Lookup(s, mustIDs(s, tokens))
	if capture[-1] && h != nil {
		res.Hidden[-1] = h
		s.Keep(h)
	}

	h = m.scaleEmbeddings(s, h)
	f := &pass{B: B, L: L, cache: cache, padding: opts.Padding, masks: map[int]*mlx.Array{}, dtype: mlx.Float32, flag: opts.flag}
	if h != nil {
		f.dtype = h.Dtype()
	}
	if opts.Padding != nil {
		offs := make([]int32, B)
		for b, p := range opts.Padding {
			offs[b] = int32(cache.offset - p)
		}
		f.offsets = s.Track(mlx.FromInt32s(offs, B))
	}
	fused := m.fusedStep(B, L, h)
	var meta, ws *mlx.Array
	if fused && m.gpu != nil {
		meta = s.Track(gpuMeta(cache.offset, B, opts.Padding))
		ws = m.gpu.workspace(s, m.Config, B)
	}
	// The GPU block kernel reads its input's rows in place: the embedding's
	// output, and a hook's, go through Contiguous (a block's own output
	// already is). After a hook, the block kernel is also told the previous
	// block's output, to run after it (prev).
	fresh := true
	var prev *mlx.Array
	for i := range m.layers {
		if s.Err() != nil {
			break
		}
		switch {
		case fused && meta != nil:
			var after *mlx.Array
			if ws != nil && fresh {
				h = s.Track(mlx.Contiguous(h))
				after = prev
			}
			h = m.gpuBlock(s, i, h, cache, meta, ws, after)
			prev = h
		case fused:
			h = m.fusedBlock(s, i, h, cache, opts.Padding)
		default:
			h = m.block(m, s, i, h, f)
		}
		out := h
		if !m.afterBlock(s, i, &h, step, opts.Hook, capture[i], res) {
			break
		}
		fresh = h != out
	}
	if err := s.Err(); err != nil {
		res.Free()
		return nil, fmt.Errorf("forward: %w", err)
	}
	if opts.flag != nil {
		if f.folded == nil {
			res.Free()
			return nil, fmt.Errorf("forward: the stop decision found no all-sum to ride in")
		}
		s.Keep(f.folded)
		res.flag = f.folded
	}
	cache.offset += L
	if opts.NoLogits {
		return res, nil
	}
	if opts.LastOnly && L > 1 {
		h = s.Track(mlx.Slice(h, []int{0, L - 1, 0}, []int{B, L, cfg.HiddenSize}, nil))
	}
	h = m.FinalNorm(s, h)
	logits := m.finishLogits(s, m.lmHead.Apply(s, h))
	if logits != nil && logits.Dtype() != mlx.Float32 {
		logits = s.Track(mlx.AsType(logits, mlx.Float32))
	}
	if err := s.Err(); err != nil {
		res.Free()
		return nil, fmt.Errorf("forward: %w", err)
	}
	s.Keep(logits)
	res.Logits = logits
	return res, nil
}

// afterBlock applies the hook to block i's output and captures it when
// asked; false after an error (recorded in s).
func (m *Model) afterBlock(s *mlx.Scope, i int, h **mlx.Array, step Step, hook Hook, capture bool, res *Result) bool {
	if s.Err() != nil {
		return false
	}
	if hook != nil {
		nh, err := hook.AfterBlock(s, i, *h, step)
		if err != nil {
			s.Fail(fmt.Errorf("hook after block %d: %w", i, err))
			return false
		}
		*h = nh
	}
	if capture {
		c, err := (*h).Copy()
		if err != nil {
			s.Fail(err)
			return false
		}
		res.Hidden[i] = c
	}
	return true
}

func mustIDs(s *mlx.Scope, tokens *mlx.Array) *mlx.Array {
	if tokens.Dtype() == mlx.Int32 || tokens.Dtype() == mlx.Uint32 {
		return tokens
	}
	return s.Track(mlx.AsType(tokens, mlx.Int32))
}

// rope rotates x ([B, heads, L, hd]) by its positions with the layer's
// RoPE (base, periods, and the rotated share of head_dim).
func (m *Model) rope(s *mlx.Scope, x *mlx.Array, spec attnSpec, f *pass) *mlx.Array {
	cfg := m.Config
	if x == nil {
		return nil
	}
	dims := cfg.RotaryDim()
	if f.offsets != nil {
		return s.Track(mlx.RoPEOffsets(x, dims, cfg.TraditionalRoPE, spec.base, 1, f.offsets, spec.freqs))
	}
	return s.Track(mlx.RoPE(x, dims, cfg.TraditionalRoPE, spec.base, 1, f.cache.offset, spec.freqs))
}

// scaleEmbeddings applies the family's embedding scale: sqrt(hidden_size)
// rounded to the compute dtype (gemma) or embedding_multiplier (granite).
func (m *Model) scaleEmbeddings(s *mlx.Scope, h *mlx.Array) *mlx.Array {
	if h == nil {
		return nil
	}
	if m.arch.EmbedScale {
		k := s.Track(mlx.Scalar(math.Sqrt(float64(m.Config.HiddenSize)), h.Dtype()))
		return s.Track(mlx.Multiply(h, k))
	}
	return scaled(s, h, m.Config.EmbeddingMultiplier)
}

// finishLogits applies what the family does after the head: division by
// logits_scaling (granite) and final soft-capping (gemma2).
func (m *Model) finishLogits(s *mlx.Scope, logits *mlx.Array) *mlx.Array {
	if k := m.Config.LogitsScaling; k != 0 && k != 1 {
		logits = scaled(s, logits, 1/k)
	}
	return softcap(s, logits, m.Config.FinalSoftcap)
}

// Eval evaluates the result and the cache together, so the graph behind the
// cache does not grow from step to step.
func (m *Model) Eval(res *Result, cache *Cache) error {
	arrays := cache.arrays()
	if res != nil && res.Logits != nil {
		arrays = append(arrays, res.Logits)
	}
	if res != nil && res.flag != nil {
		arrays = append(arrays, res.flag)
	}
	if res != nil {
		for _, h := range res.Hidden {
			arrays = append(arrays, h)
		}
	}
	return mlx.Eval(arrays...)
}

// Logits runs ids through the model in `lanes` identical lanes (hooks tell
// them apart, e.g. lane 0 base and lane 1 steered) and returns float32
// logits per lane and position: every position with allPositions, else the
// last one only. It runs on the MLX thread by itself.
func (m *Model) Logits(ids []int, lanes int, allPositions bool, hook Hook) ([][][]float32, error) {
	lanes = max(lanes, 1)
	var out [][][]float32
	err := mlx.Do(context.Background(), func() error {
		tok := make([]int32, 0, lanes*len(ids))
		for b := 0; b < lanes; b++ {
			for _, id := range ids {
				tok = append(tok, int32(id))
			}
		}
		x, err := mlx.FromInt32s(tok, lanes, len(ids))
		if err != nil {
			return err
		}
		defer x.Free()
		cache := m.NewCache(lanes)
		defer cache.Free()
		res, err := m.Forward(x, cache, ForwardOptions{LastOnly: !allPositions, Hook: hook, Step: Step{Prefill: true, PromptLen: len(ids)}})
		if err != nil {
			return err
		}
		defer res.Free()
		flat, err := res.Logits.Float32s()
		if err != nil {
			return err
		}
		V := m.Config.VocabSize
		rows := len(flat) / V / lanes
		for b := 0; b < lanes; b++ {
			var lane [][]float32
			for p := 0; p < rows; p++ {
				off := (b*rows + p) * V
				lane = append(lane, flat[off:off+V])
			}
			out = append(out, lane)
		}
		return nil
	})

	return out, err
}
