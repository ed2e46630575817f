package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

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
		if err == nil {
			if err = part.expandIfOneGroupBroken(); err != nil {
				part.free()
			}
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

// spanNorms are olmo2's q and k norms (RMSNorm over all heads' features)
// when the heads are split over the tensor-parallel ranks: each rank's sums
// of squares of q and of k go into one all-sum, so every rank divides by
// the whole rows' mean squares, as one device does; qWidth and kWidth are
// the whole rows' lengths. On one device they are rmsNorm.
func (m *Model) spanNorms(s *mlx.Scope, q, k, qw, kw *mlx.Array, qWidth, kWidth int) (*mlx.Array, *mlx.Array) {
	if m.tp == nil || q == nil || k == nil {
		return m.rmsNorm(s, q, qw), m.rmsNorm(s, k, kw)
	}
	q32 := s.Track(mlx.AsType(q, mlx.Float32))
	k32 := s.Track(mlx.AsType(k, mlx.Float32))
	sq := s.Track(mlx.Sum(s.Track(mlx.Square(q32)), true, -1))
	sk := s.Track(mlx.Sum(s.Track(mlx.Square(k32)), true, -1))
	if s.Err() != nil {
		return nil, nil
	}
	both := m.reduce(s, s.Track(mlx.Concatenate(-1, sq, sk))) // [..., 2]
	if s.Err() != nil {
		return nil, nil
	}
	sh := both.Shape()
	lo, hi := make([]int, len(sh)), append([]int(nil), sh...)
	hi[len(sh)-1] = 1
	lo2 := make([]int, len(sh))
	lo2[len(sh)-1] = 1
	norm := func(x32, ss, w *mlx.Array, width int, dt mlx.Dtype) *mlx.Array {
		ms := s.Track(mlx.Multiply(ss, s.Track(mlx.Scalar(1/float64(width), mlx.Float32))))
		r := s.Track(mlx.Rsqrt(s.Track(mlx.Add(ms, s.Track(mlx.Scalar(m.Config.RMSNormEps, mlx.Float32))))))
		y := s.Track(mlx.AsType(s.Track(mlx.Multiply(x32, r)), dt))
		return s.Track(mlx.Multiply(y, w))
	}
	qs := s.Track(mlx.Slice(both, lo, hi, nil))
	ks := s.Track(mlx.Slice(both, lo2, sh, nil))
	return norm(q32, qs, qw, qWidth, q.Dtype()), norm(k32, ks, kw, kWidth, k.Dtype())
}

// reduceCarrying is reduce for an attention output, which also carries
// the pass's stop decision (f.flag) in block 0's attention all-sum: the flag
// rides as one more element, so the decode loops learn rank 0's decision
// with each step and no collective of its own (an extra collective a step
// cost about 3.5 ms a step on the 2-core CPU over the ring). Its sum is
// left in f.folded.
func (m *Model) reduceCarrying(s *mlx.Scope, f *pass, x *mlx.Array) *mlx.Array {
	if m.tp == nil || f.flag == nil || x == nil {
		return m.reduce(s, x)
	}
	sh := x.Shape()
	n := 1
	for _, d := range sh {
		n *= d
	}
	flat := s.Track(mlx.Reshape(x, n))
	flag := s.Track(mlx.AsType(f.flag, x.Dtype()))
	sum := s.Track(mlx.AllSum(s.Track(mlx.Concatenate(0, flat, flag)), m.tp.group))
	out := s.Track(mlx.Reshape(s.Track(mlx.Slice(sum, []int{0}, []int{n}, nil)), sh...))
	f.folded = s.Track(mlx.AsType(s.Track(mlx.Slice(sum, []int{n}, []int{n + 1}, nil)), mlx.Int32))
	f.flag = nil
	return out
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

// Rank is this process's rank in the group the model is sharded over (0 on
// one device): rank 0 writes what the ranks compute together.
func (m *Model) Rank() int {
	if m.tp == nil {
		return 0
	}
	return m.tp.rank
}

// Ranks is the number of processes the model is sharded over (1 on one
// device).
func (m *Model) Ranks() int {
	if m.tp == nil {
		return 1
	}
	return m.tp.size
}

// Why a generation stops at a check point (halt's codes).
const (
	haltNone      int32 = iota // go on
	haltCancelled              // ctx is done
	haltTime                   // the deadline (max_time) passed
)

// localHalt is this process's own reason to stop at a check point: ctx
// done, else the deadline (when set) passed.
func localHalt(ctx context.Context, deadline time.Time) int32 {
	if ctx.Err() != nil {
		return haltCancelled
	}
	if !deadline.IsZero() && time.Now().After(deadline) {
		return haltTime
	}
	return haltNone
}

// haltInput is this rank's part of the group's stop decision under tensor
// parallelism: a one-element int32 flag that only rank 0 sets (to
// localHalt), so the all-sum every rank reads is rank 0's decision and the
// ranks stop at the same step (the others' ctx and clock are not
// consulted).
func (m *Model) haltInput(ctx context.Context, deadline time.Time) (*mlx.Array, error) {
	v := haltNone
	if m.tp.rank == 0 {
		v = localHalt(ctx, deadline)
	}
	x, err := mlx.FromInt32s([]int32{v}, 1)
	if err != nil {
		return nil, fmt.Errorf("stop decision: %w", err)
	}
	return x, nil
}

// readHalt reads the group's stop decision: haltInput's all-sum [1] int32.
func readHalt(flag *mlx.Array) (int32, error) {
	v, err := flag.Int32s()
	if err != nil {
		return 0, fmt.Errorf("stop decision: %w", err)
	}
	if len(v) != 1 || v[0] < haltNone || v[0] > haltTime {
		return 0, fmt.Errorf("stop decision: the ranks summed to %v", v)
	}
	return v[0], nil
}

// halt is the stop decision at a check point, taken now: localHalt on one
// device; under tensor parallelism rank 0's, all-summed by a collective of
// its own, which every rank must reach at the same point (the decode loops
// carry theirs in each step's forward pass instead: reduceCarrying). It
// runs on the MLX thread.
func (m *Model) halt(ctx context.Context, deadline time.Time) (int32, error) {
	if m.tp == nil {
		return localHalt(ctx, deadline), nil
	}
	return mlx.Call(context.Background(), func() (int32, error) {
		x, err := m.haltInput(ctx, deadline)
		if err != nil {
			return 0, err
		}
		defer x.Free()
		sum, err := mlx.AllSum(x, m.tp.group)
		if err != nil {
			return 0, fmt.Errorf("stop decision: %w", err)
		}
		defer sum.Free()
		return readHalt(sum)
	})
}

// Stopped is a check point for work on m that ctx may cancel (between
// forward passes or batches): it returns ctx's error when the work must
// stop. On one device it is ctx.Err(). Under tensor parallelism every rank
// must call it at the same point and rank 0's ctx decides for all, through
// an all-sum, so the ranks stop together; a follower then gets
// context.Canceled.
func (m *Model) Stopped(ctx context.Context) error {
	code, err := m.halt(ctx, time.Time{})
	if err != nil {
		return err
	}
	if code == haltNone {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return context.Canceled
}

// WorkContext is the context to wait for the MLX thread with (mlx.Do) for
// work on m that ctx may cancel: ctx on one device; under tensor
// parallelism none, since rank 0 must not skip work the other ranks run
// (its cancellation reaches the work through Stopped's check points
// instead).
func (m *Model) WorkContext(ctx context.Context) context.Context {
	if m.tp != nil {
		return context.Background()
	}
	return ctx
}

// RankZeroSeed is seed as rank 0 drew it, on every rank of a sharded model
// (a broadcast from rank 0), so that ranks which each drew a seed sample
// the same tokens; seed itself on one device. Every rank must call it at
// the same point.
func (m *Model) RankZeroSeed(seed uint64) (uint64, error) {
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], seed)
	got, err := m.RankZeroBytes(buf[:])
	if err != nil {
		return 0, fmt.Errorf("rank 0's seed: %w", err)
	}
	if len(got) != len(buf) {
		return 0, fmt.Errorf("rank 0's seed: %d bytes came", len(got))
	}
	return binary.LittleEndian.Uint64(got), nil
}

// RankZeroBytes is data as rank 0 gave it, on every rank of a sharded model
// (a broadcast from rank 0; the others' data is ignored); data itself on
// one device. Every rank must call it at the same point.
func (m *Model) RankZeroBytes(data []byte) ([]byte, error) {
	if m.tp == nil {
		return data, nil
	}
	return mlx.Call(context.Background(), func() ([]byte, error) { return mlx.BroadcastBytes(m.tp.group, 0, data) })
}
