package engine

import (
	"fmt"

	"github.com/mlx-genkit/genkit/mlx"
)

// Qwen3-MoE: a Qwen3 whose MLPs are mixtures of experts: a router picks
// num_experts_per_tok of num_experts SwiGLU experts per token and sums
// their outputs weighted by the router's softmax (renormalised over the
// chosen ones when norm_topk_prob).
func init() {
	Register(Arch{Name: "qwen3_moe", GGUFName: "qwen3moe", Class: "Qwen3MoeForCausalLM", QKNorm: true})
}

// moeMLP is one sparse MLP: the router and the experts' projections, each
// stored stacked, one [experts, out, in] array for all experts (gate and up
// fused into gateUp when they share a format).
type moeMLP struct {
	router *Linear
	// gateUp is gate|up ([experts, 2*inter, hidden]); gate and up are used
	// instead when they could not be fused.
	gateUp, gate, up, down *expertStack
	topK                   int
	normTopK               bool
	experts, hidden, inter int
}

// expertStack is one projection of every expert: dense (wT, the [experts,
// in, out] view of the [experts, out, in] weights) or MLX affine-quantized
// (q, [experts, out, in*bits/32] with [experts, out, in/group] scales and
// biases).
type expertStack struct {
	wT      *mlx.Array
	q       *mlx.Quantized
	out, in int
}

func (x *expertStack) free() {
	if x == nil {
		return
	}
	mlx.Free(x.wT)
	if x.q != nil {
		x.q.Free()
	}
}

func (x *expertStack) arrays() []*mlx.Array {
	if x == nil {
		return nil
	}
	if x.q != nil {
		return []*mlx.Array{x.q.Weight, x.q.Scales, x.q.Biases}
	}
	return []*mlx.Array{x.wT}
}

// apply multiplies rows of h by the experts idx names (see mlx.GatherMM):
// h [..., 1, in] and idx broadcast over h's batch axes; sorted says idx is
// ascending.
func (x *expertStack) apply(s *mlx.Scope, h, idx *mlx.Array, sorted bool) *mlx.Array {
	if s.Err() != nil {
		return nil
	}
	if x.q != nil {
		return s.Track(mlx.GatherQMM(h, x.q, nil, idx, true, sorted))
	}
	return s.Track(mlx.GatherMM(h, x.wT, nil, idx, sorted))
}

func (e *moeMLP) free() {
	if e == nil {
		return
	}
	if e.router != nil {
		e.router.free()
	}
	for _, x := range []*expertStack{e.gateUp, e.gate, e.up, e.down} {
		x.free()
	}
}

// arrays lists the experts' weight arrays (the router's are its Linear's).
func (e *moeMLP) arrays() []*mlx.Array {
	var out []*mlx.Array
	for _, x := range []*expertStack{e.gateUp, e.gate, e.up, e.down} {
		out = append(out, x.arrays()...)
	}
	return out
}

// loadMoE loads a sparse MLP: the router and the experts, from stacked
// tensors (MLX's switch_mlp, llama.cpp's ffn_*_exps) or, stacked here, from
// one tensor per expert (Hugging Face).
//
// Under tensor parallelism (tp not nil) every expert's hidden features are
// split over the ranks, as a dense MLP's are: gate and up by output rows,
// down by input columns; the router stays whole, so every rank picks the
// same experts, and sparseMLP all-sums the combined output.
func loadMoE(src *tensorSource, cfg *Config, i int, n layerNames, dequantize bool, tp *tensorParallel) (*moeMLP, error) {
	D, I, E := cfg.HiddenSize, cfg.MoEIntermediateSize, cfg.NumExperts
	e := &moeMLP{topK: cfg.NumExpertsPerTok, normTopK: cfg.NormTopKProb, experts: E, hidden: D, inter: I}
	ok := false
	defer func() {
		if !ok {
			e.free()
		}
	}()
	var err error
	if e.router, err = src.linear(n.router, E, D, false, dequantize); err != nil {
		return nil, err
	}
	if !src.has(n.stacks[0] + ".weight") {
		if n.experts == nil || !src.has(expertName(n, 0, 0)+".weight") {
			hint := ""
			if n.experts != nil {
				hint = " or " + expertName(n, 0, 0) + ".weight"
			}
			return nil, fmt.Errorf("%s: layer %d is a mixture of experts but has no expert tensors (looked for %s.weight%s)", src.file, i, n.stacks[0], hint)
		}
		for p := range n.stacks {
			names := make([]string, E)
			for x := range names {
				names[x] = expertName(n, x, p)
			}
			if err := src.stackExperts(names, n.stacks[p]); err != nil {
				return nil, err
			}
		}
	}
	dims := [3][2]int{{I, D}, {I, D}, {D, I}}
	var st [3]*expertStack
	for p := range st {
		if st[p], err = src.expertStack(n.stacks[p], E, dims[p][0], dims[p][1], dequantize); err != nil {
			for _, x := range st {
				x.free()
			}
			return nil, err
		}
	}
	if tp != nil {
		for p := range st {
			part, err := st[p].shard(tp.rank, tp.size, p < 2)
			if err != nil {
				for _, x := range st {
					x.free()
				}
				return nil, fmt.Errorf("%s: layer %d: experts' %s: %w", src.file, i, [3]string{"gate", "up", "down"}[p], err)
			}
			st[p].free()
			st[p] = part
		}
		e.inter = st[0].out
	}
	e.gate, e.up, e.down = st[0], st[1], st[2]
	if e.gateUp, err = fuseExperts(e.gate, e.up); err != nil {
		return nil, fmt.Errorf("%s: fuse experts' gate/up of layer %d: %w", src.file, i, err)
	}
	if e.gateUp != nil {
		e.gate.free()
		e.up.free()
		e.gate, e.up = nil, nil
	}
	ok = true
	return e, nil
}

// expertName is the per-expert name of projection p (0 gate, 1 up, 2
// down) of expert x.
func expertName(n layerNames, x, p int) string {
	g, u, d := n.experts(x)
	return [3]string{g, u, d}[p]
}

// stackExperts stacks the per-expert tensors names (each name.weight and,
// when quantized, name.scales and name.biases) into one tensor per suffix
// named into (into.weight: [len(names), out, in]); the parts count as used.
func (t *tensorSource) stackExperts(names []string, into string) error {
	for _, suffix := range []string{".weight", ".scales", ".biases"} {
		if !t.has(names[0] + suffix) {
			continue
		}
		parts := make([]*mlx.Array, len(names))
		defer func() { mlx.Free(parts...) }()
		var shape []int
		for x, name := range names {
			a, err := t.take(name + suffix)
			if err != nil {
				return err
			}
			if x == 0 {
				shape = a.Shape()
			}
			if fmt.Sprint(a.Shape()) != fmt.Sprint(shape) {
				return fmt.Errorf("%s: tensor %s%s has shape %v, expert 0's has %v", t.file, name, suffix, a.Shape(), shape)
			}
			if parts[x], err = mlx.ExpandDims(a, 0); err != nil {
				return fmt.Errorf("%s: stack %s%s: %w", t.file, name, suffix, err)
			}
		}
		st, err := mlx.Concatenate(0, parts...)
		if err != nil {
			return fmt.Errorf("%s: stack experts into %s%s: %w", t.file, into, suffix, err)
		}
		if old, dup := t.arrays[into+suffix]; dup {
			old.Free()
		}
		t.arrays[into+suffix] = st
	}
	return nil
}

// expertStack loads the stacked projection prefix of experts experts, each
// [out, in]: dense prefix.weight [experts, out, in] or MLX affine-quantized
// (prefix.weight, .scales, .biases), expanded to dense when dequantize.
func (t *tensorSource) expertStack(prefix string, experts, out, in int, dequantize bool) (*expertStack, error) {
	x := &expertStack{out: out, in: in}
	if !t.has(prefix + ".scales") {
		w, err := t.dense(prefix+".weight", experts, out, in)
		if err != nil {
			return nil, err
		}
		x.wT, err = mlx.SwapAxes(w, 1, 2)
		w.Free()
		return x, err
	}
	q, err := t.quant(prefix, []int{experts}, out, in)
	if err != nil {
		return nil, err
	}
	if !dequantize {
		x.q = q
		return x, nil
	}
	d, err := mlx.Dequantize(q, t.dtype)
	q.Free()
	if err != nil {
		return nil, fmt.Errorf("%s: dequantize %s: %w", t.file, prefix, err)
	}
	x.wT, err = mlx.SwapAxes(d, 1, 2)
	d.Free()
	return x, err
}

// shard returns this rank's part of the stack for tensor parallelism:
// column keeps rows [start, stop) of every expert's [out, in] weight (gate,
// up), else columns (down; quantized columns in whole groups). The part owns
// its memory.
func (x *expertStack) shard(rank, size int, column bool) (*expertStack, error) {
	n, unit := x.in, 1
	if column {
		n = x.out
	} else if x.q != nil {
		unit = x.q.GroupSize
	}
	start, stop, err := ShardRange(n, rank, size, unit)
	if err != nil {
		return nil, fmt.Errorf("shard of %d experts' [%d, %d] weights: %w", x.arrays()[0].Dim(0), x.out, x.in, err)
	}
	part := &expertStack{out: x.out, in: x.in}
	if column {
		part.out = stop - start
	} else {
		part.in = stop - start
	}
	s := mlx.NewScope()
	defer s.Close()
	axis := 1 // of every expert's [out, in]: columns (down)
	if column {
		axis = 0 // rows (gate, up)
	}
	if x.q != nil {
		if !column && (start*x.q.Bits%32 != 0 || stop*x.q.Bits%32 != 0) {
			return nil, fmt.Errorf("columns [%d, %d) of %d-bit weights do not start and end on a 32-bit word", start, stop, x.q.Bits)
		}
		part.q = shardQ(s, x.q, 1, axis, start, stop)
		if s.Err() == nil {
			s.Keep(part.q.Weight, part.q.Scales, part.q.Biases)
		}
	} else {
		w := s.Track(mlx.SwapAxes(x.wT, 1, 2)) // [experts, out, in]
		c := s.Track(takeRange(w, 1+axis, start, stop))
		if s.Err() == nil {
			part.wT = s.Track(mlx.SwapAxes(c, 1, 2))
			s.Keep(part.wT)
		}
	}
	if err := s.Err(); err == nil {
		err = mlx.Eval(part.arrays()...)
		if err == nil {
			return part, nil
		}
		s.Fail(err)
	}
	part.free()
	return nil, s.Err()
}

// fuseExperts concatenates the gate and up stacks along their output rows
// (one product for both); nil, with no error, when their formats differ.
func fuseExperts(g, u *expertStack) (*expertStack, error) {
	if (g.q == nil) != (u.q == nil) || g.in != u.in {
		return nil, nil
	}
	if g.q != nil && (g.q.Bits != u.q.Bits || g.q.GroupSize != u.q.GroupSize) {
		return nil, nil
	}
	f := &expertStack{out: g.out + u.out, in: g.in}
	var err error
	if g.q != nil {
		f.q = &mlx.Quantized{GroupSize: g.q.GroupSize, Bits: g.q.Bits}
		if f.q.Weight, err = mlx.Concatenate(1, g.q.Weight, u.q.Weight); err == nil {
			if f.q.Scales, err = mlx.Concatenate(1, g.q.Scales, u.q.Scales); err == nil {
				f.q.Biases, err = mlx.Concatenate(1, g.q.Biases, u.q.Biases)
			}
		}
	} else {
		// [E, in, out] views: concatenate along out.
		f.wT, err = mlx.Concatenate(2, g.wT, u.wT)
	}
	if err == nil {
		err = mlx.Eval(f.arrays()...)
	}
	if err != nil {
		f.free()
		return nil, err
	}
	return f, nil
}

// moeSortMin is the fewest token-expert pairs for which sparseMLP groups
// the rows by expert before the products (as mlx-lm's SwitchGLU does from
// 64): a prefill's many rows then read each expert's weights together,
// while a decode step's few rows skip the sort.
var moeSortMin = 64

// sparseMLP routes each token of x ([B, L, D]) to its top-k experts and
// runs only those: the router's softmax picks k experts per token, their
// SwiGLU outputs are computed with gathered products over the stacked
// weights and summed, weighted by the (renormalised) routing weights.
func (m *Model) sparseMLP(s *mlx.Scope, e *moeMLP, x *mlx.Array) *mlx.Array {
	if s.Err() != nil {
		return nil
	}
	sh := x.Shape()
	B, L, D := sh[0], sh[1], sh[2]
	N, E, k := B*L, e.experts, e.topK
	dt := x.Dtype()
	logits := e.router.Apply(s, s.Track(mlx.Reshape(x, N, D))) // [N, E]
	p := s.Track(mlx.Softmax(s.Track(mlx.AsType(logits, mlx.Float32)), -1, true))
	part := s.Track(mlx.Argpartition(p, E-k, -1))
	idx := s.Track(mlx.Slice(part, []int{0, E - k}, []int{N, E}, nil)) // [N, k]
	w := s.Track(mlx.TakeAlongAxis(p, idx, -1))
	if e.normTopK {
		w = s.Track(mlx.Divide(w, s.Track(mlx.Sum(w, true, -1))))
	}
	var y *mlx.Array // [N, k, D]
	if N*k >= moeSortMin {
		xs, order, inv, err := mlx.MoESort(s.Track(mlx.Reshape(x, N, 1, D)), idx)
		if err != nil {
			s.Fail(err)
			return nil
		}
		s.Track(xs, nil)
		s.Track(order, nil)
		s.Track(inv, nil)
		h := m.experts(s, e, xs, order, true) // [N*k, 1, D]
		y = s.Track(mlx.Reshape(s.Track(mlx.Take(h, inv, 0)), N, k, D))
	} else {
		h := m.experts(s, e, s.Track(mlx.Reshape(x, N, 1, 1, D)), idx, false) // [N, k, 1, D]
		y = s.Track(mlx.Reshape(h, N, k, D))
	}
	y = s.Track(mlx.Multiply(y, s.Track(mlx.Reshape(w, N, k, 1))))
	y = m.reduce(s, s.Track(mlx.Sum(y, false, 1))) // each rank has its share of every expert's features
	if dt != mlx.Float32 {
		y = s.Track(mlx.AsType(y, dt))
	}
	return s.Track(mlx.Reshape(y, B, L, D))
}

// experts runs the chosen experts' SwiGLU on rows h ([..., 1, D]) for the
// expert indices idx (broadcast over h's batch axes).
func (m *Model) experts(s *mlx.Scope, e *moeMLP, h, idx *mlx.Array, sorted bool) *mlx.Array {
	var g, u *mlx.Array
	if e.gateUp != nil {
		gu := e.gateUp.apply(s, h, idx, sorted)
		if s.Err() != nil {
			return nil
		}
		sh := gu.Shape()
		lo, hi := make([]int, len(sh)), append([]int(nil), sh...)
		hi[len(sh)-1] = e.inter
		g = s.Track(mlx.Slice(gu, lo, hi, nil))
		lo2 := make([]int, len(sh))
		lo2[len(sh)-1] = e.inter
		u = s.Track(mlx.Slice(gu, lo2, sh, nil))
	} else {
		g, u = e.gate.apply(s, h, idx, sorted), e.up.apply(s, h, idx, sorted)
	}
	a := s.Track(mlx.Multiply(m.activation(s, g), u))
	return e.down.apply(s, a, idx, sorted)
}

// moeFromGGUF reads a mixture of experts' sizes from llama.cpp's metadata
// (arch.expert_count, .expert_used_count, .expert_feed_forward_length).
// llama.cpp always renormalises qwen3moe's chosen weights; a layer
// without a router (blk.N.ffn_gate_inp) is a dense one.
func moeFromGGUF(c *Config, arch string, num func(string, float64) float64, arrays map[string]*mlx.Array) error {
	c.NumExperts = int(num("expert_count", 0))
	if c.NumExperts == 0 {
		if c.Architecture == "qwen3_moe" {
			return fmt.Errorf("%s GGUF lacks %s.expert_count", arch, arch)
		}
		return nil
	}
	c.NumExpertsPerTok = int(num("expert_used_count", 0))
	c.MoEIntermediateSize = int(num("expert_feed_forward_length", 0))
	c.NormTopKProb = num("expert_weights_norm", 1) != 0
	for i := 0; i < c.NumLayers; i++ {
		if _, ok := arrays[fmt.Sprintf("blk.%d.ffn_gate_inp.weight", i)]; !ok {
			c.MLPOnlyLayers = append(c.MLPOnlyLayers, i)
		}
	}
	return nil
}
