package engine

import (
	"fmt"

	"github.com/mlx-genkit/genkit/mlx"
)

// Tensor parallelism (docs/distributed.md): each of Size ranks holds a slice
// of every block's projections.
//
//   - Column-parallel (q, k, v, gate, up): rank r holds a contiguous block of
//     the output features (rows of W [out, in] and of the bias). Its product
//     is its slice of the full output; no communication is needed until a
//     row-parallel layer.
//   - Row-parallel (o, down): rank r holds the matching block of the input
//     features (columns of W). Its product is a partial sum: the full output
//     is the all-sum over ranks (mlx.AllSum). The bias is kept on rank 0 only,
//     so the sum adds it once.
//
// The slices are copies in memory of their own (not views that would keep
// the full tensor alive): after sharding, free the full Linear.

// ShardRange is rank's block [start, stop) of n features split over size
// ranks in whole units (a unit is e.g. head_dim, so no head is cut, or 1).
// It is an error unless n divides into size*unit.
func ShardRange(n, rank, size, unit int) (start, stop int, err error) {
	if size < 1 || rank < 0 || rank >= size {
		return 0, 0, fmt.Errorf("shard: rank %d of %d: want 0 <= rank < size", rank, size)
	}
	if unit < 1 {
		return 0, 0, fmt.Errorf("shard: unit %d: want at least 1", unit)
	}
	if n%(size*unit) != 0 {
		if unit == 1 {
			return 0, 0, fmt.Errorf("shard: %d features do not divide over %d ranks", n, size)
		}
		return 0, 0, fmt.Errorf("shard: %d features are %d units of %d, which do not divide over %d ranks", n, n/unit, unit, size)
	}
	per := n / size
	return rank * per, (rank + 1) * per, nil
}

// ShardHeads is the number of attention heads and of key/value heads each of
// size ranks holds (column-parallel q/k/v split with unit head_dim). Both
// counts must divide by size: key/value heads are not replicated.
func ShardHeads(heads, kvHeads, size int) (local, localKV int, err error) {
	if size < 1 {
		return 0, 0, fmt.Errorf("shard heads: %d ranks", size)
	}
	if heads%size != 0 || kvHeads%size != 0 {
		return 0, 0, fmt.Errorf("shard heads: %d heads and %d key/value heads do not both divide over %d ranks", heads, kvHeads, size)
	}
	return heads / size, kvHeads / size, nil
}

// ColumnShard returns rank's column-parallel slice of l: output features
// [start, stop) of ShardRange(out, rank, size, unit), i.e. those rows of W
// [out, in] (dense or quantized: a quantized row holds all its groups) and of
// the bias. x ColumnShard(l, r, n, u).Apply(...) is the r-th block of the last
// axis of l.Apply(x). It must run on the MLX thread; l is left as it was.
func ColumnShard(l *Linear, rank, size, unit int) (*Linear, error) {
	if l == nil {
		return nil, fmt.Errorf("column shard: nil linear")
	}
	start, stop, err := ShardRange(l.out, rank, size, unit)
	if err != nil {
		return nil, fmt.Errorf("column shard of a [%d, %d] linear: %w", l.out, l.in, err)
	}
	s := mlx.NewScope()
	defer s.Close()
	out := &Linear{rows: l.rows, gemvRows: l.gemvRows, out: stop - start, in: l.in}
	if l.wT != nil {
		w := s.Track(mlx.Transpose(l.wT)) // [out, in] view
		out.w = s.Track(takeRange(w, 0, start, stop))
		out.wT = s.Track(mlx.Transpose(out.w))
	}
	out.q = shardQ(s, l.q, 0, 0, start, stop)
	out.rq = shardQ(s, l.rq, 0, 0, start, stop)
	if l.bias != nil {
		out.bias = s.Track(takeRange(l.bias, 0, start, stop))
	}
	return finishShard(s, out, l.w != nil, "column shard")
}

// RowShard returns rank's row-parallel slice of l: input features [start,
// stop) of ShardRange(in, rank, size, unit), i.e. those columns of W. For a
// quantized weight the block must start and end on quantization groups. The
// bias stays on rank 0 only. The sum over ranks r of RowShard(l, r, n,
// u).Apply(x[..., block r]) is l.Apply(x). It must run on the MLX thread; l
// is left as it was.
func RowShard(l *Linear, rank, size, unit int) (*Linear, error) {
	if l == nil {
		return nil, fmt.Errorf("row shard: nil linear")
	}
	start, stop, err := ShardRange(l.in, rank, size, unit)
	if err != nil {
		return nil, fmt.Errorf("row shard of a [%d, %d] linear: %w", l.out, l.in, err)
	}
	for _, q := range []*mlx.Quantized{l.q, l.rq} {
		if q == nil {
			continue
		}
		if start%q.GroupSize != 0 || stop%q.GroupSize != 0 || start*q.Bits%32 != 0 || stop*q.Bits%32 != 0 {
			return nil, fmt.Errorf("row shard of a [%d, %d] linear: rank %d's inputs [%d, %d) do not start and end on quantization groups of %d (%d-bit): use fewer ranks", l.out, l.in, rank, start, stop, q.GroupSize, q.Bits)
		}
	}
	s := mlx.NewScope()
	defer s.Close()
	out := &Linear{rows: l.rows, gemvRows: l.gemvRows, out: l.out, in: stop - start}
	if l.wT != nil {
		w := s.Track(mlx.Transpose(l.wT)) // [out, in] view
		out.w = s.Track(takeRange(w, 1, start, stop))
		out.wT = s.Track(mlx.Transpose(out.w))
	}
	out.q = shardQ(s, l.q, 0, 1, start, stop)
	out.rq = shardQ(s, l.rq, 0, 1, start, stop)
	if l.bias != nil && rank == 0 {
		out.bias = s.Track(takeRange(l.bias, 0, 0, l.out))
	}
	return finishShard(s, out, l.w != nil, "row shard")
}

// shardQ slices q along axis 0 (output rows) or 1 (input features
// [start, stop), on group boundaries) of its [out, in] matrices, as copies;
// lead is the number of axes in front of them (1 for a stack of experts).
func shardQ(s *mlx.Scope, q *mlx.Quantized, lead, axis, start, stop int) *mlx.Quantized {
	if q == nil {
		return nil
	}
	out := &mlx.Quantized{GroupSize: q.GroupSize, Bits: q.Bits}
	if axis == 0 {
		out.Weight = s.Track(takeRange(q.Weight, lead, start, stop))
		out.Scales = s.Track(takeRange(q.Scales, lead, start, stop))
		out.Biases = s.Track(takeRange(q.Biases, lead, start, stop))
		return out
	}
	// Packed weights: 32/bits values a uint32 word; one scale and bias a
	// group.
	out.Weight = s.Track(takeRange(q.Weight, lead+1, start*q.Bits/32, stop*q.Bits/32))
	out.Scales = s.Track(takeRange(q.Scales, lead+1, start/q.GroupSize, stop/q.GroupSize))
	out.Biases = s.Track(takeRange(q.Biases, lead+1, start/q.GroupSize, stop/q.GroupSize))
	return out
}

// takeRange is a[start:stop] along axis as a new array with memory of its
// own (a gather, not a view of a's buffer).
func takeRange(a *mlx.Array, axis, start, stop int) (*mlx.Array, error) {
	idx, err := mlx.Arange(float64(start), float64(stop), 1, mlx.Int32)
	if err != nil {
		return nil, err
	}
	defer idx.Free()
	return mlx.Take(a, idx, axis)
}

// finishShard evaluates the shard's arrays, keeps them out of the scope and
// drops the [out, in] view unless the source Linear had one (the GEMV path
// reads it).
func finishShard(s *mlx.Scope, l *Linear, keepW bool, what string) (*Linear, error) {
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var live []*mlx.Array
	for _, a := range []*mlx.Array{l.w, l.wT, l.bias} {
		if a != nil {
			live = append(live, a)
		}
	}
	for _, q := range []*mlx.Quantized{l.q, l.rq} {
		if q != nil {
			live = append(live, q.Weight, q.Scales, q.Biases)
		}
	}
	if err := mlx.Eval(live...); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	s.Keep(live...)
	if !keepW && l.w != nil {
		// wT is a view of w's memory, which stays alive through it.
		l.w.Free()
		l.w = nil
	}
	return l, nil
}

// EmbeddingShard is one rank's block of an embedding table's vocabulary:
// rows [Start, Stop) of the table.
type EmbeddingShard struct {
	Start, Stop int
	table       *Embedding
}

// ShardEmbedding returns rank's block of e's vocabulary (rows of the dense
// or quantized table, as copies). Its Lookup gives zero rows for ids outside
// the block, so the all-sum over ranks is the full lookup. The vocabulary
// must divide by size. It must run on the MLX thread; e is left as it was.
func ShardEmbedding(e *Embedding, rank, size int) (*EmbeddingShard, error) {
	if e == nil {
		return nil, fmt.Errorf("embedding shard: nil embedding")
	}
	start, stop, err := ShardRange(e.vocab, rank, size, 1)
	if err != nil {
		return nil, fmt.Errorf("embedding shard of a %d-token vocabulary: %w", e.vocab, err)
	}
	s := mlx.NewScope()
	defer s.Close()
	t := &Embedding{vocab: stop - start, dim: e.dim, dtype: e.dtype}
	if e.w != nil {
		t.w = s.Track(takeRange(e.w, 0, start, stop))
	}
	t.q = shardQ(s, e.q, 0, 0, start, stop)
	t.rq = shardQ(s, e.rq, 0, 0, start, stop)
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("embedding shard: %w", err)
	}
	var live []*mlx.Array
	if t.w != nil {
		live = append(live, t.w)
	}
	for _, q := range []*mlx.Quantized{t.q, t.rq} {
		if q != nil {
			live = append(live, q.Weight, q.Scales, q.Biases)
		}
	}
	if err := mlx.Eval(live...); err != nil {
		return nil, fmt.Errorf("embedding shard: %w", err)
	}
	s.Keep(live...)
	return &EmbeddingShard{Start: start, Stop: stop, table: t}, nil
}

// Lookup returns the rows of ids [B, L] as [B, L, dim]: the table's row for
// ids in [Start, Stop), zeros for the others. AllSum over the ranks gives
// the full lookup exactly (one rank adds each row; the others add zeros).
func (es *EmbeddingShard) Lookup(s *mlx.Scope, ids *mlx.Array) *mlx.Array {
	lo := s.Track(mlx.Scalar(float64(es.Start), ids.Dtype()))
	hi := s.Track(mlx.Scalar(float64(es.Stop), ids.Dtype()))
	in := s.Track(mlx.LogicalAnd(s.Track(mlx.GreaterEqual(ids, lo)), s.Track(mlx.Less(ids, hi))))
	local := s.Track(mlx.Subtract(ids, lo))
	zero := s.Track(mlx.Scalar(0, ids.Dtype()))
	safe := s.Track(mlx.Where(in, local, zero))
	rows := es.table.Lookup(s, safe)
	if s.Err() != nil {
		return nil
	}
	mask := s.Track(mlx.ExpandDims(in, -1))
	zeros := s.Track(mlx.Scalar(0, rows.Dtype()))
	return s.Track(mlx.Where(mask, rows, zeros))
}

// Vocab is the number of tokens in this rank's block.
func (es *EmbeddingShard) Vocab() int { return es.Stop - es.Start }

// Free releases the shard's table.
func (es *EmbeddingShard) Free() {
	if es != nil && es.table != nil {
		es.table.free()
	}
}
