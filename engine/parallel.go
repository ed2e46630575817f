package engine

import (
	"fmt"

	"github.com/mlx-genkit/genkit/mlx"
)

// tensorParallel is one rank's part of a tensor-parallel model
// (docs/distributed.md): its block of the attention heads and of the MLP's
// hidden features, with q/k/v and gate/up column-parallel and o and down
// row-parallel, an all-sum after o and after down. The embedding, the norms
// and the head are replicated, so every rank holds the same residual stream
// after each block: a steering hook adds the same alpha·v on every rank,
// logits and sampling are the same bits on every rank, and rank 0 alone
// reports them.
type tensorParallel struct {
	group          *mlx.Group
	rank, size     int
	heads, kvHeads int
}

// newTensorParallel checks that cfg splits over g's ranks and returns this
// rank's part.
func newTensorParallel(g *mlx.Group, cfg *Config, arch Arch) (*tensorParallel, error) {
	size := g.Size()
	switch {
	case cfg.NumExperts > 0 && cfg.MoEIntermediateSize%size != 0:
		return nil, fmt.Errorf("tensor parallelism: moe_intermediate_size %d does not split over %d ranks", cfg.MoEIntermediateSize, size)
	case cfg.IntermediateSize%size != 0:
		return nil, fmt.Errorf("tensor parallelism: intermediate_size %d does not split over %d ranks", cfg.IntermediateSize, size)
	}
	h, kv, err := ShardHeads(cfg.NumHeads, cfg.NumKVHeads, size)
	if err != nil {
		return nil, fmt.Errorf("tensor parallelism: %w", err)
	}
	return &tensorParallel{group: g, rank: g.Rank(), size: size, heads: h, kvHeads: kv}, nil
}

// shardBlock replaces b's projections with this rank's slices (before
// q/k/v and gate/up are fused), freeing the full ones.
func (tp *tensorParallel) shardBlock(b *block, cfg *Config) error {
	hd := cfg.HeadDim
	for _, p := range []struct {
		l      **Linear
		column bool
		unit   int
	}{
		{&b.q, true, hd}, {&b.k, true, hd}, {&b.v, true, hd}, {&b.o, false, hd},
		{&b.gate, true, 1}, {&b.up, true, 1}, {&b.down, false, 1},
	} {
		full := *p.l
		if full == nil {
			continue
		}
		var part *Linear
		var err error
		if p.column {
			part, err = ColumnShard(full, tp.rank, tp.size, p.unit)
		} else {
			part, err = RowShard(full, tp.rank, tp.size, p.unit)
		}
		if err != nil {
			return err
		}
		full.free()
		*p.l = part
	}
	return nil
}

// shardNorm replaces *w, a norm weight over every head's features (olmo2's
// q/k norms: [heads * head_dim]), with this rank's heads' part, freeing
// the full one.
func (tp *tensorParallel) shardNorm(w **mlx.Array, headDim int) error {
	full := *w
	if full == nil {
		return nil
	}
	n := full.Dim(0)
	start, stop, err := ShardRange(n, tp.rank, tp.size, headDim)
	if err != nil {
		return fmt.Errorf("norm of %d features: %w", n, err)
	}
	part, err := mlx.Slice(full, []int{start}, []int{stop}, nil)
	if err == nil {
		var c *mlx.Array
		c, err = mlx.Contiguous(part)
		part.Free()
		part = c
	}
	if err == nil {
		err = mlx.Eval(part)
	}
	if err != nil {
		part.Free()
		return fmt.Errorf("norm of %d features: %w", n, err)
	}
	full.Free()
	*w = part
	return nil
}

// spanNorm is RMSNorm over the last axis of x when that axis is split over
// the tensor-parallel ranks (olmo2's q/k norms, which span every head): the
// squares are all-summed, so every rank divides by the whole row's mean
// square, as one device does; width is the whole row's length. On one
// device it is rmsNorm.
func (m *Model) spanNorm(s *mlx.Scope, x, w *mlx.Array, width int) *mlx.Array {
	if m.tp == nil || x == nil || w == nil {
		return m.rmsNorm(s, x, w)
	}
	x32 := s.Track(mlx.AsType(x, mlx.Float32))
	ss := m.reduce(s, s.Track(mlx.Sum(s.Track(mlx.Square(x32)), true, -1)))
	ms := s.Track(mlx.Multiply(ss, s.Track(mlx.Scalar(1/float64(width), mlx.Float32))))
	r := s.Track(mlx.Rsqrt(s.Track(mlx.Add(ms, s.Track(mlx.Scalar(m.Config.RMSNormEps, mlx.Float32))))))
	y := s.Track(mlx.AsType(s.Track(mlx.Multiply(x32, r)), x.Dtype()))
	return s.Track(mlx.Multiply(y, w))
}

// heads is the number of query and key/value heads this process computes:
// its shard's under tensor parallelism, else the model's.
func (m *Model) heads() (int, int) {
	if m.tp != nil {
		return m.tp.heads, m.tp.kvHeads
	}
	return m.Config.NumHeads, m.Config.NumKVHeads
}

// reduce all-sums a row-parallel product over the tensor-parallel group (x
// unchanged on one device).
func (m *Model) reduce(s *mlx.Scope, x *mlx.Array) *mlx.Array {
	if m.tp == nil || x == nil {
		return x
	}
	return s.Track(mlx.AllSum(x, m.tp.group))
}

// Ranks is the number of processes the model is sharded over (1 on one
// device).
func (m *Model) Ranks() int {
	if m.tp == nil {
		return 1
	}
	return m.tp.size
}
