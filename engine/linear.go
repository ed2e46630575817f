package engine

import (
	"fmt"

	"github.com/mlx-genkit/genkit/mlx"
)

// Linear is y = x W^T + b, with W dense or MLX affine-quantized.
type Linear struct {
	// rows, when set, computes products of at most rowProductMaxRows rows
	// with mlx.RowProduct (dense float32 on the CPU: see useRowProduct).
	rows bool
	// rq, when set, holds the weight quantized beside the dense wT: products
	// of few rows read it with mlx.QRowProduct (the CPU's decode path).
	rq *mlx.Quantized
	// gemvRows, when positive, is the most rows of a product computed
	// with genkit's CUDA matrix-vector kernels (see Model.useGEMV and
	// planKernels); w is the dense weight's [out, in] view they read.
	gemvRows int
	w        *mlx.Array
	wT       *mlx.Array     // dense weight, transposed to [in, out]
	q        *mlx.Quantized // quantized weight [out, in/...]
	bias     *mlx.Array     // optional [out]
	out      int
	in       int
}

// Apply computes x W^T + b for x of shape [..., in].
func (l *Linear) Apply(s *mlx.Scope, x *mlx.Array) *mlx.Array {
	y := l.product(s, x)
	if l.bias != nil {
		y = s.Track(mlx.Add(y, l.bias))
	}
	return y
}

// product is x W^T.
func (l *Linear) product(s *mlx.Scope, x *mlx.Array) *mlx.Array {
	if l.gemvRows > 0 && x.Size()/l.in <= l.gemvRows {
		var y *mlx.Array
		var ok bool
		var err error
		if l.q != nil {
			y, ok, err = mlx.QGEMV(x, l.q)
		} else if l.w != nil {
			y, ok, err = mlx.GEMV(x, l.w)
		}
		if ok || err != nil {
			return s.Track(y, err)
		}
	}
	var y *mlx.Array
	switch {
	case l.q != nil:
		y = s.Track(mlx.QuantizedMatmul(x, l.q, true))
	case l.rq != nil && x.Size()/l.in <= qRowProductMaxRows:
		y = s.Track(mlx.QRowProduct(x, l.rq))
	case l.rows && x.Size()/l.in <= rowProductMaxRows:
		y = s.Track(mlx.RowProduct(x, l.wT))
	default:
		y = s.Track(mlx.Matmul(x, l.wT))
	}
	return y
}

// rowProductMaxRows is the most rows (lanes x positions) a Linear computes
// as matrix-vector products; more rows go to the GEMM.
const rowProductMaxRows = 2

// qRowProductMaxRows is the same for the quantized row kernels (they read
// each weight block once for up to four rows, but beyond two rows the
// unpacking makes them slower than the BLAS GEMM on the dense copy here:
// 8 lanes ran at 5.0 steps/s against 8.9).
const qRowProductMaxRows = 2

// Dims is (out, in).
func (l *Linear) Dims() (int, int) { return l.out, l.in }

// Quantized reports whether the weight is quantized.
func (l *Linear) Quantized() bool { return l.q != nil }

func (l *Linear) free() {
	mlx.Free(l.w, l.wT, l.bias)
	if l.q != nil {
		l.q.Free()
	}
	if l.rq != nil {
		l.rq.Free()
	}
}

// Embedding maps token ids to rows of a (possibly quantized) table.
type Embedding struct {
	w     *mlx.Array // dense [vocab, dim]
	q     *mlx.Quantized
	rq    *mlx.Quantized // kept beside w for the tied head's row products
	vocab int
	dim   int
	dtype mlx.Dtype
}

// Lookup returns the rows for ids [B, L] as [B, L, dim].
func (e *Embedding) Lookup(s *mlx.Scope, ids *mlx.Array) *mlx.Array {
	if e.q == nil {
		return s.Track(mlx.Take(e.w, ids, 0))
	}
	q := &mlx.Quantized{
		Weight:    s.Track(mlx.Take(e.q.Weight, ids, 0)),
		Scales:    s.Track(mlx.Take(e.q.Scales, ids, 0)),
		Biases:    s.Track(mlx.Take(e.q.Biases, ids, 0)),
		GroupSize: e.q.GroupSize, Bits: e.q.Bits,
	}
	if s.Err() != nil {
		return nil
	}
	return s.Track(mlx.Dequantize(q, e.dtype))
}

// AsLinear projects hidden states onto the vocabulary with the same table
// (tied embeddings): h E^T.
func (e *Embedding) AsLinear() *Linear {
	if e.q != nil {
		return &Linear{q: e.q, out: e.vocab, in: e.dim}
	}
	return nil // built lazily by the loader (needs a transpose handle)
}

func (e *Embedding) free() {
	mlx.Free(e.w)
	if e.q != nil {
		e.q.Free()
	}
	if e.rq != nil {
		e.rq.Free()
	}
}

// tensorSource hands out named tensors to the loader and reports what is
// missing or left unused.
type tensorSource struct {
	file    string
	arrays  map[string]*mlx.Array
	used    map[string]bool
	dtype   mlx.Dtype // compute dtype for dense weights, scales and biases
	qGroup  int       // default quantization of *.scales tensors (0: infer)
	qBits   int
	perBits map[string]QuantSpec
	// keepQ keeps 4- and 8-bit weights beside their dense expansion, for
	// the CPU's quantized row products (decode steps).
	keepQ bool
	// group shards the blocks over its ranks (nil or one rank: none).
	group *mlx.Group
}

func (t *tensorSource) has(name string) bool { _, ok := t.arrays[name]; return ok }

func (t *tensorSource) take(name string) (*mlx.Array, error) {
	a, ok := t.arrays[name]
	if !ok {
		return nil, fmt.Errorf("%s: tensor %s is missing", t.file, name)
	}
	t.used[name] = true
	return a, nil
}

// dense returns name converted to the compute dtype, checking its shape.
func (t *tensorSource) dense(name string, shape ...int) (*mlx.Array, error) {
	a, err := t.take(name)
	if err != nil {
		return nil, err
	}
	if err := checkShape(t.file, name, a, shape); err != nil {
		return nil, err
	}
	if a.Dtype() == t.dtype {
		return a.Copy()
	}
	return mlx.AsType(a, t.dtype)
}

// norm returns a norm weight in the compute dtype; plusOne adds one first
// in float32 (gemma's (1 + w) RMSNorm, so every family runs the same op).
func (t *tensorSource) norm(name string, dim int, plusOne bool) (*mlx.Array, error) {
	if !plusOne {
		return t.dense(name, dim)
	}
	a, err := t.take(name)
	if err != nil {
		return nil, err
	}
	if err := checkShape(t.file, name, a, []int{dim}); err != nil {
		return nil, err
	}
	f, err := mlx.AsType(a, mlx.Float32)
	if err != nil {
		return nil, err
	}
	defer f.Free()
	one, err := mlx.Scalar(1, mlx.Float32)
	if err != nil {
		return nil, err
	}
	defer one.Free()
	w, err := mlx.Add(f, one)
	if err != nil || t.dtype == mlx.Float32 {
		return w, err
	}
	defer w.Free()
	return mlx.AsType(w, t.dtype)
}

// splitRows splits the fused tensor prefix (weight, and scales, biases and
// bias when present) along its rows into tensors named parts, of rows rows
// each; the fused tensor counts as used.
func (t *tensorSource) splitRows(prefix string, parts []string, rows []int) error {
	total := 0
	for _, r := range rows {
		total += r
	}
	for _, suffix := range []string{".weight", ".scales", ".biases", ".bias"} {
		a, ok := t.arrays[prefix+suffix]
		if !ok {
			continue
		}
		t.used[prefix+suffix] = true
		sh := a.Shape()
		if len(sh) == 0 || sh[0] != total {
			return fmt.Errorf("tensor %s%s has shape %v, want %d rows (%v)", prefix, suffix, sh, total, rows)
		}
		start := 0
		for j, name := range parts {
			lo, hi := make([]int, len(sh)), append([]int(nil), sh...)
			lo[0], hi[0] = start, start+rows[j]
			part, err := mlx.Slice(a, lo, hi, nil)
			if err != nil {
				return fmt.Errorf("split %s%s: %w", prefix, suffix, err)
			}
			if old, dup := t.arrays[name+suffix]; dup {
				old.Free()
			}
			t.arrays[name+suffix] = part
			start += rows[j]
		}
	}
	return nil
}

func checkShape(file, name string, a *mlx.Array, want []int) error {
	got := a.Shape()
	if len(want) == 0 {
		return nil
	}
	bad := len(got) != len(want)
	for i := 0; !bad && i < len(got); i++ {
		bad = want[i] >= 0 && got[i] != want[i]
	}
	if bad {
		return fmt.Errorf("%s: tensor %s has shape %v, want %v", file, name, got, want)
	}
	return nil
}

// quant returns the quantization of prefix when prefix.scales exists: MLX
// affine-quantized [lead..., out, in] weights (lead: the experts of a
// stack, none for a linear), their scales and biases in the compute dtype.
func (t *tensorSource) quant(prefix string, lead []int, out, in int) (*mlx.Quantized, error) {
	if !t.has(prefix + ".scales") {
		return nil, nil
	}
	kind := "tensor"
	if len(lead) > 0 {
		kind = "expert stack"
	}
	w, err := t.take(prefix + ".weight")
	if err != nil {
		return nil, err
	}
	sc, err := t.take(prefix + ".scales")
	if err != nil {
		return nil, err
	}
	if !t.has(prefix + ".biases") {
		return nil, fmt.Errorf("%s: tensor %s.biases is missing (only affine quantization is supported)", t.file, prefix)
	}
	bi, err := t.take(prefix + ".biases")
	if err != nil {
		return nil, err
	}
	ws, ss, bs := w.Shape(), sc.Shape(), bi.Shape()
	n := len(lead)
	bad := len(ws) != n+2 || len(ss) != n+2 || fmt.Sprint(ss) != fmt.Sprint(bs) || ws[n] != out || ss[n] != out || ss[n+1] == 0
	for i := 0; !bad && i < n; i++ {
		bad = ws[i] != lead[i] || ss[i] != lead[i]
	}
	if bad {
		return nil, fmt.Errorf("%s: quantized %s %s has weight %v, scales %v and biases %v, want %v of %d rows",
			t.file, kind, prefix, ws, ss, bs, lead, out)
	}
	group, bits := in/ss[n+1], ws[n+1]*32/in
	if group*ss[n+1] != in || bits*in != ws[n+1]*32 {
		return nil, fmt.Errorf("%s: quantized %s %s: weight %v and scales %v do not fit %d inputs", t.file, kind, prefix, ws, ss, in)
	}
	if spec, ok := t.perBits[prefix]; ok && (spec.Bits != bits || spec.GroupSize != group) {
		return nil, fmt.Errorf("%s: %s: config says %d bits / group %d, tensors say %d / %d", t.file, prefix, spec.Bits, spec.GroupSize, bits, group)
	}
	q := &mlx.Quantized{GroupSize: group, Bits: bits}
	if q.Weight, err = w.Copy(); err == nil {
		if q.Scales, err = mlx.AsType(sc, t.dtype); err == nil {
			q.Biases, err = mlx.AsType(bi, t.dtype)
		}
	}
	if err != nil {
		q.Free()
		return nil, fmt.Errorf("%s: %s: %w", t.file, prefix, err)
	}
	return q, nil
}

// qmmOneGroupBroken reports whether MLX's quantized_matmul gives wrong
// products for q on this device. On CUDA (mlx-cuda-13 0.32.4, measured on
// an H200 against MLX's CPU result: docs/gpu/results-2026-11-27g-h200x2.txt)
// a product of two or more rows with weights whose rows are one group of 64
// is off by tens, 4 and 8 bits alike, while the same 64-wide rows in groups
// of 32, every wider row (128 to 1024) and gather_qmm over the same shapes
// match. Rows of one group of 32 or 128 were not measured and are expanded
// too (dense is always right). Rows of one group occur in test-sized models
// and in weights tensor parallelism splits finely (a real model's rows are
// hundreds of values); such weights are expanded to dense on CUDA, the
// memory of a dense matrix for the verified product.
func qmmOneGroupBroken(q *mlx.Quantized) bool {
	if q == nil || q.Scales == nil || q.Scales.Dim(-1) != 1 || mlx.GPUBackend() != "cuda" {
		return false
	}
	dev, err := mlx.DefaultDevice()
	return err == nil && dev == mlx.GPU
}

// expandIfOneGroupBroken replaces l's quantized weight with its dense
// values where qmmOneGroupBroken says MLX's product would be wrong: at load,
// and after tensor parallelism splits a weight's rows (RowShard can leave
// rows of one group).
func (l *Linear) expandIfOneGroupBroken() error {
	if l == nil || !qmmOneGroupBroken(l.q) {
		return nil
	}
	d, err := mlx.Dequantize(l.q, l.q.Scales.Dtype())
	if err != nil {
		return fmt.Errorf("dequantize a one-group weight: %w", err)
	}
	wT, err := mlx.Transpose(d)
	d.Free()
	if err != nil {
		return err
	}
	l.q.Free()
	l.q, l.wT = nil, wT
	return nil
}

// linear loads prefix.weight (dense [out,in] or quantized) and an optional
// prefix.bias; wantBias forces the bias to exist.
func (t *tensorSource) linear(prefix string, out, in int, wantBias, dequantize bool) (*Linear, error) {
	l := &Linear{out: out, in: in}
	q, err := t.quant(prefix, nil, out, in)
	if err != nil {
		return nil, err
	}
	if q != nil && dequantize {
		d, err := mlx.Dequantize(q, t.dtype)
		if t.keepQ && (q.Bits == 4 || q.Bits == 8) && err == nil {
			l.rq, err = contiguousQ(q)
			if err != nil {
				return nil, err
			}
		} else {
			q.Free()
		}
		if err != nil {
			return nil, fmt.Errorf("%s: dequantize %s: %w", t.file, prefix, err)
		}
		l.wT, err = mlx.Transpose(d)
		d.Free()
		if err != nil {
			return nil, err
		}
	} else if q != nil {
		l.q = q
		if err := l.expandIfOneGroupBroken(); err != nil {
			l.free()
			return nil, fmt.Errorf("%s: %s: %w", t.file, prefix, err)
		}
	} else {
		w, err := t.dense(prefix+".weight", out, in)
		if err != nil {
			return nil, err
		}
		l.wT, err = mlx.Transpose(w)
		w.Free()
		if err != nil {
			return nil, err
		}
	}
	if t.has(prefix+".bias") || wantBias {
		b, err := t.dense(prefix+".bias", out)
		if err != nil {
			l.free()
			return nil, err
		}
		l.bias = b
	}
	return l, nil
}

func (t *tensorSource) embedding(name string, vocab, dim int, dequantize bool) (*Embedding, error) {
	e := &Embedding{vocab: vocab, dim: dim, dtype: t.dtype}
	q, err := t.quant(name, nil, vocab, dim)
	if err != nil {
		return nil, err
	}
	if q != nil && !dequantize && !qmmOneGroupBroken(q) {
		e.q = q
		return e, nil
	}
	if q != nil {
		e.w, err = mlx.Dequantize(q, t.dtype)
		if t.keepQ && (q.Bits == 4 || q.Bits == 8) && err == nil {
			// The tied output projection's row products.
			if e.rq, err = contiguousQ(q); err != nil {
				return e, err
			}
		} else {
			q.Free()
		}
		return e, err
	}
	e.w, err = t.dense(name+".weight", vocab, dim)
	return e, err
}

// dropUsed frees the arrays already taken (the loader holds what it kept)
// and forgets them; they still count as used.
func (t *tensorSource) dropUsed() {
	for k, a := range t.arrays {
		if t.used[k] {
			a.Free()
			delete(t.arrays, k)
		}
	}
}

func (t *tensorSource) unused() []string {
	var out []string
	for k := range t.arrays {
		if !t.used[k] {
			out = append(out, k)
		}
	}
	return out
}

func (t *tensorSource) free() {
	for _, a := range t.arrays {
		a.Free()
	}
}

// fuseLinears concatenates the output rows of linears that read the same
// input into one Linear, and turns each of them into a view of its rows, so
// the memory is not doubled. It returns nil (no error) when they cannot be
// fused: a mix of dense and quantized weights, different quantization, or
// biases on some only.
func fuseLinears(ls ...*Linear) (*Linear, error) {
	if len(ls) < 2 {
		return nil, nil
	}
	first := ls[0]
	for _, l := range ls {
		if (l.q == nil) != (first.q == nil) || (l.bias == nil) != (first.bias == nil) || l.in != first.in {
			return nil, nil
		}
		if l.q != nil && (l.q.Bits != first.q.Bits || l.q.GroupSize != first.q.GroupSize) {
			return nil, nil
		}
	}
	s := mlx.NewScope()
	defer s.Close()
	out := 0
	for _, l := range ls {
		out += l.out
	}
	f := &Linear{out: out, in: first.in}
	cat := func(get func(*Linear) *mlx.Array) *mlx.Array {
		parts := make([]*mlx.Array, len(ls))
		for i, l := range ls {
			parts[i] = get(l)
		}
		return s.Track(mlx.Concatenate(0, parts...))
	}
	// rows returns rows [off, off+n) of a (axis 0) as a new view.
	rows := func(a *mlx.Array, off, n int) (*mlx.Array, error) {
		sh := a.Shape()
		start, stop := make([]int, len(sh)), append([]int(nil), sh...)
		start[0], stop[0] = off, off+n
		return mlx.Slice(a, start, stop, nil)
	}
	catQ := func(get func(*Linear) *mlx.Quantized) *mlx.Quantized {
		q := get(first)
		return &mlx.Quantized{GroupSize: q.GroupSize, Bits: q.Bits,
			Weight: cat(func(l *Linear) *mlx.Array { return get(l).Weight }),
			Scales: cat(func(l *Linear) *mlx.Array { return get(l).Scales }),
			Biases: cat(func(l *Linear) *mlx.Array { return get(l).Biases })}
	}
	// qRows is rows [off, off+n) of q as views.
	qRows := func(q *mlx.Quantized, off, n int) (*mlx.Quantized, error) {
		out := &mlx.Quantized{GroupSize: q.GroupSize, Bits: q.Bits}
		var err error
		if out.Weight, err = rows(q.Weight, off, n); err == nil {
			if out.Scales, err = rows(q.Scales, off, n); err == nil {
				out.Biases, err = rows(q.Biases, off, n)
			}
		}
		if err != nil {
			out.Free()
			return nil, err
		}
		return out, nil
	}
	var w *mlx.Array // dense [out, in]
	if first.q != nil {
		f.q = catQ(func(l *Linear) *mlx.Quantized { return l.q })
	} else {
		// Keep the [out, in] row-major layout (x W^T), as the parts had.
		w = cat(func(l *Linear) *mlx.Array { return s.Track(mlx.Transpose(l.wT)) })
		f.wT = s.Track(mlx.Transpose(w))
	}
	if first.bias != nil {
		f.bias = cat(func(l *Linear) *mlx.Array { return l.bias })
	}
	fuseRQ := first.rq != nil
	for _, l := range ls {
		if l.rq == nil || l.rq.Bits != first.rq.Bits || l.rq.GroupSize != first.rq.GroupSize {
			fuseRQ = false
		}
	}
	if fuseRQ {
		f.rq = catQ(func(l *Linear) *mlx.Quantized { return l.rq })
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	// Evaluate the fused arrays, then make the parts views of them.
	var live []*mlx.Array
	for _, a := range []*mlx.Array{f.wT, f.bias} {
		if a != nil {
			live = append(live, a)
		}
	}
	for _, q := range []*mlx.Quantized{f.q, f.rq} {
		if q != nil {
			live = append(live, q.Weight, q.Scales, q.Biases)
		}
	}
	if err := mlx.Eval(live...); err != nil {
		return nil, err
	}
	s.Keep(live...)
	off := 0
	for _, l := range ls {
		if f.q != nil {
			q, err := qRows(f.q, off, l.out)
			if err != nil {
				f.free()
				return nil, err
			}
			l.q.Free()
			l.q = q
		} else {
			part, err := rows(w, off, l.out)
			if err != nil {
				f.free()
				return nil, err
			}
			wT, err := mlx.Transpose(part)
			part.Free()
			if err != nil {
				f.free()
				return nil, err
			}
			l.wT.Free()
			l.wT = wT
		}
		if f.rq != nil {
			// Only the fused linear computes products: the parts need no
			// quantized copy of their own.
			l.rq.Free()
			l.rq = nil
		}
		if l.bias != nil {
			b, err := rows(f.bias, off, l.out)
			if err != nil {
				f.free()
				return nil, err
			}
			l.bias.Free()
			l.bias = b
		}
		off += l.out
	}
	return f, nil
}

// contiguousQ returns q with row-contiguous arrays (GGUF tensors can load
// as strided views, and the row kernels read them directly); q is consumed.
func contiguousQ(q *mlx.Quantized) (*mlx.Quantized, error) {
	out := &mlx.Quantized{GroupSize: q.GroupSize, Bits: q.Bits}
	var err error
	for _, p := range []struct {
		dst **mlx.Array
		src *mlx.Array
	}{{&out.Weight, q.Weight}, {&out.Scales, q.Scales}, {&out.Biases, q.Biases}} {
		if err == nil {
			*p.dst, err = mlx.Contiguous(p.src)
		}
	}
	q.Free()
	if err != nil {
		out.Free()
		return nil, err
	}
	return out, nil
}
