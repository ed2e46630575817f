package engine

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/mlx"
)

// randomMoE is a sparse MLP of E experts (top k) with random stacked
// weights: dense, or quantized with bits (4 or 8, group 32); fuse false
// keeps gate and up apart.
func randomMoE(r *rand.Rand, E, k, D, I, bits int, fuse bool) (*moeMLP, error) {
	randn := func(n int, scale float64) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(r.NormFloat64() * scale)
		}
		return out
	}
	e := &moeMLP{topK: k, normTopK: true, experts: E, hidden: D, inter: I}
	rw, err := mlx.FromFloat32s(randn(D*E, 1/math.Sqrt(float64(D))), D, E)
	if err != nil {
		return nil, err
	}
	e.router = &Linear{wT: rw, out: E, in: D}
	stack := func(out, in int) (*expertStack, error) {
		w, err := mlx.FromFloat32s(randn(E*out*in, 1/math.Sqrt(float64(in))), E, out, in)
		if err != nil {
			return nil, err
		}
		defer w.Free()
		x := &expertStack{out: out, in: in}
		if bits > 0 {
			x.q, err = mlx.Quantize(w, 32, bits)
		} else {
			x.wT, err = mlx.SwapAxes(w, 1, 2)
		}
		return x, err
	}
	if e.gate, err = stack(I, D); err == nil {
		if e.up, err = stack(I, D); err == nil {
			e.down, err = stack(D, I)
		}
	}
	if err == nil && fuse {
		if e.gateUp, err = fuseExperts(e.gate, e.up); err == nil {
			e.gate.free()
			e.up.free()
			e.gate, e.up = nil, nil
		}
	}
	if err == nil {
		err = mlx.Eval(append(e.arrays(), rw)...)
	}
	if err != nil {
		e.free()
		return nil, err
	}
	return e, nil
}

// expertProduct is h @ W_x^T for expert x of stack st, by slicing the
// expert out of the stack and running an ordinary product.
func expertProduct(s *mlx.Scope, st *expertStack, x int, h *mlx.Array) *mlx.Array {
	if q := expertSlice(s, st, x); q != nil {
		return s.Track(mlx.QuantizedMatmul(h, q, true))
	}
	if st.q != nil {
		return nil
	}
	return s.Track(mlx.Matmul(h, expertAxis(s, st.wT, x)))
}

// expertAxis is expert x's [rows, cols] matrix of a stacked [E, rows, cols]
// array.
func expertAxis(s *mlx.Scope, a *mlx.Array, x int) *mlx.Array {
	sh := a.Shape()
	lo, hi := make([]int, 3), append([]int(nil), sh...)
	lo[0], hi[0] = x, x+1
	return s.Track(mlx.Reshape(s.Track(mlx.Slice(a, lo, hi, nil)), sh[1], sh[2]))
}

// expertSlice is expert x's quantized weight of a quantized stack; nil for
// a dense one or after an error (recorded in s).
func expertSlice(s *mlx.Scope, st *expertStack, x int) *mlx.Quantized {
	if st.q == nil {
		return nil
	}
	q := &mlx.Quantized{Weight: expertAxis(s, st.q.Weight, x), Scales: expertAxis(s, st.q.Scales, x), Biases: expertAxis(s, st.q.Biases, x), GroupSize: st.q.GroupSize, Bits: st.q.Bits}
	if s.Err() != nil {
		return nil
	}
	return q
}

// expertProductDequantized is expertProduct through the dequantized weight
// instead of quantized_matmul: MLX's CUDA backend has no float32-activation
// kernel for the shard test's small shapes ("No implementation for problem
// shape: 3x64x64x1"), and that test is about the shard arithmetic, not the
// product kernel.
func expertProductDequantized(s *mlx.Scope, st *expertStack, x int, h *mlx.Array) *mlx.Array {
	if st.q == nil {
		return expertProduct(s, st, x, h)
	}
	q := expertSlice(s, st, x)
	if q == nil {
		return nil
	}
	w := s.Track(mlx.Dequantize(q, mlx.Float32)) // [out, in]
	return s.Track(mlx.Matmul(h, s.Track(mlx.Transpose(w))))
}

// allExpertsMLP is the mixture computed the simple way (genkit's first
// version): every expert on every token, weighted by the token's routing
// weight (zero for experts not in its top k). The reference for the
// gathered path, and the baseline of BenchmarkMoE.
func (m *Model) allExpertsMLP(s *mlx.Scope, e *moeMLP, x *mlx.Array) *mlx.Array {
	logits := e.router.Apply(s, x) // [B, L, E]
	p := s.Track(mlx.Softmax(s.Track(mlx.AsType(logits, mlx.Float32)), -1, true))
	sorted := s.Track(mlx.Sort(p, -1))
	sh := p.Shape()
	kth := s.Track(mlx.Slice(sorted, []int{0, 0, e.experts - e.topK}, []int{sh[0], sh[1], e.experts - e.topK + 1}, nil))
	keep := s.Track(mlx.GreaterEqual(p, kth))
	w := s.Track(mlx.Where(keep, p, s.Track(mlx.Scalar(0, mlx.Float32))))
	if e.normTopK {
		w = s.Track(mlx.Divide(w, s.Track(mlx.Sum(w, true, -1))))
	}
	var out *mlx.Array
	for x2 := 0; x2 < e.experts; x2++ {
		var g, u *mlx.Array
		if e.gateUp != nil {
			gu := expertProduct(s, e.gateUp, x2, x)
			if s.Err() != nil {
				return nil
			}
			gs := gu.Shape()
			g = s.Track(mlx.Slice(gu, []int{0, 0, 0}, []int{gs[0], gs[1], e.inter}, nil))
			u = s.Track(mlx.Slice(gu, []int{0, 0, e.inter}, gs, nil))
		} else {
			g, u = expertProduct(s, e.gate, x2, x), expertProduct(s, e.up, x2, x)
		}
		y := expertProduct(s, e.down, x2, s.Track(mlx.Multiply(m.activation(s, g), u)))
		col := s.Track(mlx.Slice(w, []int{0, 0, x2}, []int{sh[0], sh[1], x2 + 1}, nil))
		y = s.Track(mlx.Multiply(y, col))
		if out == nil {
			out = y
		} else {
			out = s.Track(mlx.Add(out, y))
		}
	}
	return out
}

func onMLX(t testing.TB, fn func(s *mlx.Scope) error) {
	t.Helper()
	if err := mlx.Do(context.Background(), func() error {
		s := mlx.NewScope()
		defer s.Close()
		if err := fn(s); err != nil {
			return err
		}
		return s.Err()
	}); err != nil {
		t.Fatal(err)
	}
}

// TestSparseMLPMatchesAllExperts: the gathered path (decode-sized batches
// unsorted, larger ones grouped by expert) equals running every expert on
// every token, for dense and 4- and 8-bit stacks, gate|up fused or not.
func TestSparseMLPMatchesAllExperts(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	m := &Model{Config: &Config{HiddenAct: "silu"}}
	const E, k, D, I = 16, 4, 64, 32
	for _, bits := range []int{0, 4, 8} {
		for _, fuse := range []bool{true, false} {
			for _, rows := range [][2]int{{1, 1}, {3, 1}, {2, 20}} { // [B, L]: decode steps and a prefill
				name := fmt.Sprintf("bits=%d/fuse=%v/B=%d,L=%d", bits, fuse, rows[0], rows[1])
				onMLX(t, func(s *mlx.Scope) error {
					e, err := randomMoE(r, E, k, D, I, bits, fuse)
					if err != nil {
						return err
					}
					defer e.free()
					if fuse != (e.gateUp != nil) {
						t.Fatalf("%s: fused %v", name, e.gateUp != nil)
					}
					xs := make([]float32, rows[0]*rows[1]*D)
					for i := range xs {
						xs[i] = float32(r.NormFloat64())
					}
					x := s.Track(mlx.FromFloat32s(xs, rows[0], rows[1], D))
					got, err := s.Track(m.sparseMLP(s, e, x), nil).Float32s()
					if err != nil {
						return err
					}
					want, err := s.Track(m.allExpertsMLP(s, e, x), nil).Float32s()
					if err != nil {
						return err
					}
					var worst, scale float64
					for i := range want {
						worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
						scale = math.Max(scale, math.Abs(float64(want[i])))
					}
					if worst > 1e-5*math.Max(1, scale) || math.IsNaN(worst) || len(got) != len(want) {
						t.Errorf("%s: gathered and all-experts outputs differ by %g (scale %g)", name, worst, scale)
					}
					return nil
				})
			}
		}
	}
}

// TestMoEGGUFConfig: the qwen3moe metadata fills the experts' sizes; a
// file without qwen3moe.expert_count is refused; a layer without a router
// is a dense one.
func TestMoEGGUFConfig(t *testing.T) {
	path := filepath.Join("testdata", "hf", "qwen3_moe_all", "model.f32.gguf")
	err := mlx.Do(context.Background(), func() error {
		arrays, meta, err := mlx.LoadGGUF(path)
		if err != nil {
			return err
		}
		defer func() {
			for _, a := range arrays {
				a.Free()
			}
		}()
		c, err := configFromGGUF(meta, arrays)
		if err != nil {
			return err
		}
		if c.NumExperts != 16 || c.NumExpertsPerTok != 4 || c.MoEIntermediateSize != 32 || !c.NormTopKProb || len(c.MLPOnlyLayers) != 0 {
			t.Errorf("config %d experts, top %d, size %d, norm %v, dense layers %v; want 16, 4, 32, true, none",
				c.NumExperts, c.NumExpertsPerTok, c.MoEIntermediateSize, c.NormTopKProb, c.MLPOnlyLayers)
		}
		router := arrays["blk.1.ffn_gate_inp.weight"]
		delete(arrays, "blk.1.ffn_gate_inp.weight")
		c, err = configFromGGUF(meta, arrays)
		arrays["blk.1.ffn_gate_inp.weight"] = router
		if err != nil {
			return err
		}
		if fmt.Sprint(c.MLPOnlyLayers) != "[1]" || c.sparseLayer(1) || !c.sparseLayer(0) {
			t.Errorf("without blk.1's router: dense layers %v, want [1]", c.MLPOnlyLayers)
		}
		delete(meta, "qwen3moe.expert_count")
		if _, err := configFromGGUF(meta, arrays); err == nil || !strings.Contains(err.Error(), "qwen3moe.expert_count") {
			t.Errorf("without expert_count: err %v, want one naming qwen3moe.expert_count", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkMoE compares the gathered experts with running every expert
// on a synthetic layer of 64 experts, top 4 (hidden 512, expert size 256,
// float32 on the default device): decode steps of 1 and 8 lanes and a
// prefill of 128 tokens.
func BenchmarkMoE(b *testing.B) {
	const E, k, D, I = 64, 4, 512, 256
	m := &Model{Config: &Config{HiddenAct: "silu"}}
	for _, bits := range []int{0, 4} {
		var e *moeMLP
		if err := mlx.Do(context.Background(), func() (err error) {
			e, err = randomMoE(rand.New(rand.NewSource(1)), E, k, D, I, bits, true)
			return err
		}); err != nil {
			b.Fatal(err)
		}
		for _, shape := range [][2]int{{1, 1}, {8, 1}, {1, 128}} {
			for _, path := range []string{"gathered", "all-experts"} {
				b.Run(fmt.Sprintf("bits=%d/B=%d,L=%d/%s", bits, shape[0], shape[1], path), func(b *testing.B) {
					err := mlx.Do(context.Background(), func() error {
						s := mlx.NewScope()
						defer s.Close()
						r := rand.New(rand.NewSource(2))
						xs := make([]float32, shape[0]*shape[1]*D)
						for i := range xs {
							xs[i] = float32(r.NormFloat64())
						}
						x := s.Track(mlx.FromFloat32s(xs, shape[0], shape[1], D))
						if err := s.Err(); err != nil {
							return err
						}
						b.ResetTimer()
						for i := 0; i < b.N; i++ {
							it := mlx.NewScope()
							var y *mlx.Array
							if path == "gathered" {
								y = m.sparseMLP(it, e, x)
							} else {
								y = m.allExpertsMLP(it, e, x)
							}
							err := it.Err()
							if err == nil {
								err = mlx.Eval(y)
							}
							it.Close()
							if err != nil {
								return err
							}
						}
						b.StopTimer()
						b.ReportMetric(float64(b.N*shape[0]*shape[1])/b.Elapsed().Seconds(), "tokens/s")
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				})
			}
		}
		_ = mlx.Do(context.Background(), func() error { e.free(); return nil })
	}
}

// TestExpertStackShard: for dense and 4- and 8-bit stacks, each rank's
// column shard of gate gives its block of every expert's outputs, and the
// row shards of down, each fed its block of the input, sum to the whole
// product (what the all-sum after the experts relies on); a quantized down
// whose columns are one group cannot split over two ranks and says so.
func TestExpertStackShard(t *testing.T) {
	const E, D, I, size = 4, 64, 128, 2
	maxDiff := func(s *mlx.Scope, a, b *mlx.Array) float64 {
		d, err := s.Track(mlx.Max(s.Track(mlx.Abs(s.Track(mlx.Subtract(a, b)))), false)).Float32s()
		if err != nil || len(d) != 1 {
			s.Fail(fmt.Errorf("max diff: %v", err))
			return math.Inf(1)
		}
		return float64(d[0])
	}
	for _, bits := range []int{0, 4, 8} {
		t.Run(fmt.Sprintf("bits%d", bits), func(t *testing.T) {
			onMLX(t, func(s *mlx.Scope) error {
				r := rand.New(rand.NewSource(int64(7 + bits)))
				e, err := randomMoE(r, E, 2, D, I, bits, false)
				if err != nil {
					return err
				}
				defer e.free()
				hv := make([]float32, 3*D)
				av := make([]float32, 3*I)
				for i := range hv {
					hv[i] = float32(r.NormFloat64())
				}
				for i := range av {
					av[i] = float32(r.NormFloat64())
				}
				h := s.Track(mlx.FromFloat32s(hv, 3, D))
				a := s.Track(mlx.FromFloat32s(av, 3, I))
				for x := 0; x < E; x++ {
					fullG := expertProductDequantized(s, e.gate, x, h) // [3, I]
					fullD := expertProductDequantized(s, e.down, x, a) // [3, D]
					var sum *mlx.Array
					for rank := 0; rank < size; rank++ {
						g, err := e.gate.shard(rank, size, true)
						if err != nil {
							return err
						}
						dn, err := e.down.shard(rank, size, false)
						if err != nil {
							g.free()
							return err
						}
						lo, hi := rank*I/size, (rank+1)*I/size
						want := s.Track(mlx.Slice(fullG, []int{0, lo}, []int{3, hi}, nil))
						if d := maxDiff(s, expertProductDequantized(s, g, x, h), want); d > 1e-4 {
							t.Errorf("expert %d, rank %d: gate shard off by %g", x, rank, d)
						}
						part := expertProductDequantized(s, dn, x, s.Track(mlx.Slice(a, []int{0, lo}, []int{3, hi}, nil)))
						if sum == nil {
							sum = part
						} else {
							sum = s.Track(mlx.Add(sum, part))
						}
						if g.out != I/size || dn.in != I/size || dn.out != D {
							t.Errorf("rank %d: shard shapes gate out %d, down [%d, %d]", rank, g.out, dn.out, dn.in)
						}
						if err := s.Err(); err != nil {
							g.free()
							dn.free()
							return err
						}
						g.free()
						dn.free()
					}
					if d := maxDiff(s, sum, fullD); d > 1e-4 {
						t.Errorf("expert %d: down shards sum off by %g", x, d)
					}
				}
				return nil
			})
		})
	}
	onMLX(t, func(s *mlx.Scope) error {
		e, err := randomMoE(rand.New(rand.NewSource(3)), E, 2, D, 32, 4, false)
		if err != nil {
			return err
		}
		defer e.free()
		if p, err := e.down.shard(0, size, false); err == nil {
			p.free()
			t.Error("4-bit down of 32 columns (one group of 32) split over two ranks")
		} else if !strings.Contains(err.Error(), "1 units of 32") {
			t.Errorf("error %q does not name the groups", err)
		}
		return nil
	})
}
