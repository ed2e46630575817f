package mlx_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mlx-genkit/genkit/mlx"
)

// on runs fn on the MLX thread and fails the test on error. It also checks
// that fn leaves no array handle behind.
func on(t testing.TB, fn func(s *mlx.Scope) error) {
	t.Helper()
	before := mlx.LiveArrays()
	err := mlx.Do(context.Background(), func() error {
		s := mlx.NewScope()
		defer s.Close()
		if err := fn(s); err != nil {
			return err
		}
		return s.Err()
	})

	if err != nil {
		t.Fatal(err)
	}
	if after := mlx.LiveArrays(); after != before {
		t.Fatalf("array handles leaked: %d before, %d after", before, after)
	}
}

func randn(r *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64())
	}
	return out
}

// closeRel checks the normwise relative error: max|got-want| <= tol *
// max(1, max|want|), and that nothing is NaN.
func closeRel(t testing.TB, name string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", name, len(got), len(want))
		return
	}
	scale := 1.0
	for _, w := range want {
		scale = math.Max(scale, math.Abs(float64(w)))
	}
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if d > tol*scale || math.IsNaN(float64(got[i])) {
			t.Errorf("%s[%d] = %g, want %g (diff %g, allowed %g)", name, i, got[i], want[i], d, tol*scale)
			return
		}
	}
}

func read(t testing.TB, a *mlx.Array) []float32 {
	t.Helper()
	v, err := a.Float32s()
	if err != nil {
		t.Error(err)
	}
	return v
}

func goMatmul(a, b []float32, m, k, n int) []float32 {
	out := make([]float32, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += float64(a[i*k+p]) * float64(b[p*n+j])
			}
			out[i*n+j] = float32(s)
		}
	}
	return out
}

func TestMatmul(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, tc := range []struct{ m, k, n int }{{1, 1, 1}, {7, 13, 5}, {4, 576, 64}, {33, 17, 65}} {
		a, b := randn(r, tc.m*tc.k), randn(r, tc.k*tc.n)
		on(t, func(s *mlx.Scope) error {
			x := s.Track(mlx.FromFloat32s(a, tc.m, tc.k))
			y := s.Track(mlx.FromFloat32s(b, tc.k, tc.n))
			z := s.Track(mlx.Matmul(x, y))
			if s.Err() != nil {
				return s.Err()
			}
			if got := z.Shape(); got[0] != tc.m || got[1] != tc.n {
				return fmt.Errorf("shape %v", got)
			}
			closeRel(t, "matmul", read(t, z), goMatmul(a, b, tc.m, tc.k, tc.n), 1e-5)
			return nil
		})
	}
}

func TestElementwiseAndReductions(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	a, b := randn(r, 24), randn(r, 24)
	on(t, func(s *mlx.Scope) error {
		x := s.Track(mlx.FromFloat32s(a, 4, 6))
		y := s.Track(mlx.FromFloat32s(b, 4, 6))
		cases := []struct {
			name string
			got  *mlx.Array
			want func(i int) float64
		}{
			{"add", s.Track(mlx.Add(x, y)), func(i int) float64 { return float64(a[i] + b[i]) }},
			{"subtract", s.Track(mlx.Subtract(x, y)), func(i int) float64 { return float64(a[i] - b[i]) }},
			{"multiply", s.Track(mlx.Multiply(x, y)), func(i int) float64 { return float64(a[i] * b[i]) }},
			{"divide", s.Track(mlx.Divide(x, y)), func(i int) float64 { return float64(a[i] / b[i]) }},
			{"maximum", s.Track(mlx.Maximum(x, y)), func(i int) float64 { return math.Max(float64(a[i]), float64(b[i])) }},
			{"exp", s.Track(mlx.Exp(x)), func(i int) float64 { return math.Exp(float64(a[i])) }},
			{"sigmoid", s.Track(mlx.Sigmoid(x)), func(i int) float64 { return 1 / (1 + math.Exp(-float64(a[i]))) }},
			{"silu", s.Track(mlx.SiLU(x)), func(i int) float64 { v := float64(a[i]); return v / (1 + math.Exp(-v)) }},
			{"abs", s.Track(mlx.Abs(x)), func(i int) float64 { return math.Abs(float64(a[i])) }},
			{"tanh", s.Track(mlx.Tanh(x)), func(i int) float64 { return math.Tanh(float64(a[i])) }},
		}
		for _, c := range cases {
			if c.got == nil {
				return s.Err()
			}
			v := read(t, c.got)
			want := make([]float32, len(v))
			for i := range want {
				want[i] = float32(c.want(i))
			}
			closeRel(t, c.name, v, want, 1e-5)
		}
		// Reductions over the last axis.
		sum := read(t, s.Track(mlx.Sum(x, false, 1)))
		mx := read(t, s.Track(mlx.Max(x, false, 1)))
		lse := read(t, s.Track(mlx.LogSumExp(x, false, 1)))
		am, err := s.Track(mlx.Argmax(x, 1, false)).Int32s()
		if err != nil {
			return err
		}
		for row := 0; row < 4; row++ {
			var ws, we float64
			wm, wi := math.Inf(-1), 0
			for j := 0; j < 6; j++ {
				v := float64(a[row*6+j])
				ws += v
				we += math.Exp(v)
				if v > wm {
					wm, wi = v, j
				}
			}
			closeRel(t, "sum", sum[row:row+1], []float32{float32(ws)}, 1e-5)
			closeRel(t, "max", mx[row:row+1], []float32{float32(wm)}, 1e-6)
			closeRel(t, "logsumexp", lse[row:row+1], []float32{float32(math.Log(we))}, 1e-5)
			if int(am[row]) != wi {
				return fmt.Errorf("argmax row %d = %d, want %d", row, am[row], wi)
			}
		}
		return nil
	})
}

func TestSoftmax(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for _, n := range []int{1, 5, 49152} {
		a := randn(r, 2*n)
		for i := range a {
			a[i] *= 8
		}
		on(t, func(s *mlx.Scope) error {
			x := s.Track(mlx.FromFloat32s(a, 2, n))
			got := read(t, s.Track(mlx.Softmax(x, -1, true)))
			want := make([]float32, len(a))
			for row := 0; row < 2; row++ {
				m := math.Inf(-1)
				for j := 0; j < n; j++ {
					m = math.Max(m, float64(a[row*n+j]))
				}
				var z float64
				for j := 0; j < n; j++ {
					z += math.Exp(float64(a[row*n+j]) - m)
				}
				for j := 0; j < n; j++ {
					want[row*n+j] = float32(math.Exp(float64(a[row*n+j])-m) / z)
				}
			}
			closeRel(t, "softmax", got, want, 1e-5)
			return nil
		})
	}
}

func TestRMSNorm(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	const rows, d = 3, 576
	const eps = 1e-5
	a, w := randn(r, rows*d), randn(r, d)
	on(t, func(s *mlx.Scope) error {
		x := s.Track(mlx.FromFloat32s(a, rows, d))
		wt := s.Track(mlx.FromFloat32s(w, d))
		got := read(t, s.Track(mlx.RMSNorm(x, wt, eps)))
		noW := read(t, s.Track(mlx.RMSNorm(x, nil, eps)))
		want := make([]float32, len(a))
		wantNoW := make([]float32, len(a))
		for i := 0; i < rows; i++ {
			var ss float64
			for j := 0; j < d; j++ {
				ss += float64(a[i*d+j]) * float64(a[i*d+j])
			}
			inv := 1 / math.Sqrt(ss/d+eps)
			for j := 0; j < d; j++ {
				wantNoW[i*d+j] = float32(float64(a[i*d+j]) * inv)
				want[i*d+j] = float32(float64(a[i*d+j]) * inv * float64(w[j]))
			}
		}
		closeRel(t, "rms_norm", got, want, 1e-5)
		closeRel(t, "rms_norm without weight", noW, wantNoW, 1e-5)
		return nil
	})
}

// goRoPE rotates x [heads, seq, dim] the HF way (halves) or the traditional
// way (adjacent pairs), position p = offset + index.
func goRoPE(x []float32, heads, seq, dim int, base float64, offset int, traditional bool) []float32 {
	out := make([]float32, len(x))
	half := dim / 2
	for h := 0; h < heads; h++ {
		for p := 0; p < seq; p++ {
			row := x[(h*seq+p)*dim : (h*seq+p+1)*dim]
			o := out[(h*seq+p)*dim : (h*seq+p+1)*dim]
			for i := 0; i < half; i++ {
				theta := float64(offset+p) * math.Pow(base, -2*float64(i)/float64(dim))
				c, sn := math.Cos(theta), math.Sin(theta)
				i1, i2 := i, i+half
				if traditional {
					i1, i2 = 2*i, 2*i+1
				}
				x1, x2 := float64(row[i1]), float64(row[i2])
				o[i1] = float32(x1*c - x2*sn)
				o[i2] = float32(x2*c + x1*sn)
			}
		}
	}
	return out
}

func TestRoPE(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	const heads, seq, dim = 3, 7, 64
	a := randn(r, heads*seq*dim)
	for _, tc := range []struct {
		traditional bool
		offset      int
		base        float64
	}{{false, 0, 10000}, {false, 5, 100000}, {true, 0, 10000}, {true, 11, 100000}} {
		on(t, func(s *mlx.Scope) error {
			x := s.Track(mlx.FromFloat32s(a, 1, heads, seq, dim))
			got := read(t, s.Track(mlx.RoPE(x, dim, tc.traditional, float32(tc.base), 1, tc.offset, nil)))
			closeRel(t, "rope", got, goRoPE(a, heads, seq, dim, tc.base, tc.offset, tc.traditional), 1e-5)
			// The same through an offset held in an array.
			off := s.Track(mlx.Scalar(float64(tc.offset), mlx.Int32))
			got2 := read(t, s.Track(mlx.RoPEOffsets(x, dim, tc.traditional, float32(tc.base), 1, off, nil)))
			closeRel(t, "rope offsets", got2, goRoPE(a, heads, seq, dim, tc.base, tc.offset, tc.traditional), 1e-5)
			return nil
		})
	}
}

// goAttention computes causal softmax(qk^T*scale)v with grouped KV heads;
// q is [H, Lq, D], k and v [Hkv, Lk, D]; query i sits at position Lk-Lq+i.
func goAttention(q, k, v []float32, h, hkv, lq, lk, d int, scale float64, causal bool) []float32 {
	out := make([]float32, h*lq*d)
	group := h / hkv
	for hh := 0; hh < h; hh++ {
		kh := hh / group
		for i := 0; i < lq; i++ {
			scores := make([]float64, lk)
			m := math.Inf(-1)
			for j := 0; j < lk; j++ {
				if causal && j > lk-lq+i {
					scores[j] = math.Inf(-1)
					continue
				}
				var s float64
				for e := 0; e < d; e++ {
					s += float64(q[(hh*lq+i)*d+e]) * float64(k[(kh*lk+j)*d+e])
				}
				scores[j] = s * scale
				m = math.Max(m, scores[j])
			}
			var z float64
			for j := range scores {
				scores[j] = math.Exp(scores[j] - m)
				z += scores[j]
			}
			for e := 0; e < d; e++ {
				var acc float64
				for j := 0; j < lk; j++ {
					acc += scores[j] / z * float64(v[(kh*lk+j)*d+e])
				}
				out[(hh*lq+i)*d+e] = float32(acc)
			}
		}
	}
	return out
}

func TestAttention(t *testing.T) {
	r := rand.New(rand.NewSource(6))
	for _, tc := range []struct {
		h, hkv, lq, lk, d int
		mode              string
	}{
		{4, 2, 6, 6, 16, mlx.MaskCausal}, // prefill, GQA
		{9, 3, 1, 10, 64, mlx.MaskNone},  // one decode step sees everything
		{4, 4, 3, 8, 32, mlx.MaskCausal}, // chunk after a cache of 5
		{2, 1, 5, 5, 8, mlx.MaskArray},   // explicit causal mask as an array
	} {
		q, k, v := randn(r, tc.h*tc.lq*tc.d), randn(r, tc.hkv*tc.lk*tc.d), randn(r, tc.hkv*tc.lk*tc.d)
		scale := 1 / math.Sqrt(float64(tc.d))
		on(t, func(s *mlx.Scope) error {
			qa := s.Track(mlx.FromFloat32s(q, 1, tc.h, tc.lq, tc.d))
			ka := s.Track(mlx.FromFloat32s(k, 1, tc.hkv, tc.lk, tc.d))
			va := s.Track(mlx.FromFloat32s(v, 1, tc.hkv, tc.lk, tc.d))
			var mask *mlx.Array
			if tc.mode == mlx.MaskArray {
				m := make([]float32, tc.lq*tc.lk)
				for i := 0; i < tc.lq; i++ {
					for j := 0; j < tc.lk; j++ {
						if j > tc.lk-tc.lq+i {
							m[i*tc.lk+j] = float32(math.Inf(-1))
						}
					}
				}
				mask = s.Track(mlx.FromFloat32s(m, tc.lq, tc.lk))
			}
			got := read(t, s.Track(mlx.ScaledDotProductAttention(qa, ka, va, float32(scale), tc.mode, mask)))
			want := goAttention(q, k, v, tc.h, tc.hkv, tc.lq, tc.lk, tc.d, scale, tc.mode != mlx.MaskNone)
			closeRel(t, "attention "+tc.mode, got, want, 1e-5)
			return nil
		})
	}
}

func TestQuantizeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	const rows, cols = 64, 256
	w := randn(r, rows*cols)
	x := randn(r, 3*cols)
	for _, tc := range []struct{ group, bits int }{{32, 4}, {64, 4}, {32, 8}, {64, 8}} {
		on(t, func(s *mlx.Scope) error {
			wa := s.Track(mlx.FromFloat32s(w, rows, cols))
			q, err := mlx.Quantize(wa, tc.group, tc.bits)
			if err != nil {
				return err
			}
			defer q.Free()
			deq := read(t, s.Track(mlx.Dequantize(q, mlx.Float32)))
			// Each value is within one step of its group's grid (MLX makes the
			// group's larger-magnitude extreme exact, which can stretch the
			// step slightly), and on average within a quarter step.
			levels := float64(int(1)<<tc.bits - 1)
			var sumRatio float64
			for g := 0; g < rows*cols/tc.group; g++ {
				lo, hi := math.Inf(1), math.Inf(-1)
				for _, v := range w[g*tc.group : (g+1)*tc.group] {
					lo, hi = math.Min(lo, float64(v)), math.Max(hi, float64(v))
				}
				step := (hi - lo) / levels
				for i := g * tc.group; i < (g+1)*tc.group; i++ {
					// fp16 scales and biases add a little on top of half a step.
					d := math.Abs(float64(deq[i]) - float64(w[i]))
					if d > step+2e-3*math.Max(1, math.Abs(float64(w[i]))) {
						return fmt.Errorf("g%d b%d: value %d off by %g (step %g)", tc.group, tc.bits, i, d, step)
					}
					sumRatio += d / step
				}
			}
			if mean := sumRatio / float64(rows*cols); mean > 0.3 {
				return fmt.Errorf("g%d b%d: mean error %.3f steps", tc.group, tc.bits, mean)
			}
			// quantized_matmul equals a plain matmul against the dequantized weights.
			xa := s.Track(mlx.FromFloat32s(x, 3, cols))
			got := read(t, s.Track(mlx.QuantizedMatmul(xa, q, true)))
			dT := make([]float32, cols*rows)
			for i := 0; i < rows; i++ {
				for j := 0; j < cols; j++ {
					dT[j*rows+i] = deq[i*cols+j]
				}
			}
			closeRel(t, "quantized_matmul", got, goMatmul(x, dT, 3, cols, rows), 1e-4)
			return nil
		})
	}
}

func TestSafetensorsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "weights.safetensors")
	f := []float32{1.5, -2, 3.25, 4, 5, 6}
	ids := []int32{7, -8, 9}
	on(t, func(s *mlx.Scope) error {
		a := s.Track(mlx.FromFloat32s(f, 2, 3))
		b := s.Track(mlx.FromInt32s(ids, 3))
		c := s.Track(mlx.AsType(a, mlx.Bfloat16))
		if err := s.Err(); err != nil {
			return err
		}
		meta := map[string]string{"format": "mlx", "note": "round trip"}
		if err := mlx.SaveSafetensors(path, map[string]*mlx.Array{"a": a, "b": b, "c": c}, meta); err != nil {
			return err
		}
		arrays, gotMeta, err := mlx.LoadSafetensors(path)
		if err != nil {
			return err
		}
		for _, x := range arrays {
			s.Track(x, nil)
		}
		if len(arrays) != 3 || gotMeta["format"] != "mlx" || gotMeta["note"] != "round trip" {
			return fmt.Errorf("loaded %d arrays, meta %v", len(arrays), gotMeta)
		}
		closeRel(t, "a", read(t, arrays["a"]), f, 0)
		if sh := arrays["a"].Shape(); len(sh) != 2 || sh[0] != 2 || sh[1] != 3 {
			return fmt.Errorf("a shape %v", sh)
		}
		if arrays["c"].Dtype() != mlx.Bfloat16 {
			return fmt.Errorf("c dtype %v", arrays["c"].Dtype())
		}
		closeRel(t, "c", read(t, arrays["c"]), f, 0) // these values are exact in bf16
		gotIDs, err := arrays["b"].Int32s()
		if err != nil {
			return err
		}
		for i := range ids {
			if gotIDs[i] != ids[i] {
				return fmt.Errorf("b = %v, want %v", gotIDs, ids)
			}
		}
		return nil
	})
	// No temporary files are left beside the saved file.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want 1", len(entries))
	}
}

func TestGGUFRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.gguf")
	vec := []float32{0.25, -1, 2, 8}
	on(t, func(s *mlx.Scope) error {
		a := s.Track(mlx.FromFloat32s(vec, 4))
		n := s.Track(mlx.Scalar(3, mlx.Uint32))
		if err := s.Err(); err != nil {
			return err
		}
		if err := mlx.SaveGGUF(path, map[string]*mlx.Array{"direction.3": a},
			map[string]string{"general.architecture": "controlvector"},
			map[string]*mlx.Array{"controlvector.layer_count": n}); err != nil {
			return err
		}
		arrays, meta, err := mlx.LoadGGUF(path)
		if err != nil {
			return err
		}
		for _, x := range arrays {
			s.Track(x, nil)
		}
		closeRel(t, "direction.3", read(t, arrays["direction.3"]), vec, 0)
		if meta["general.architecture"].String != "controlvector" {
			return fmt.Errorf("architecture %+v", meta["general.architecture"])
		}
		if v, ok := meta["controlvector.layer_count"].Int(); !ok || v != 3 {
			return fmt.Errorf("layer_count %+v", meta["controlvector.layer_count"])
		}
		return nil
	})
}

func TestNpyRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.npy")
	vec := []float32{1, 2, 3}
	on(t, func(s *mlx.Scope) error {
		a := s.Track(mlx.FromFloat32s(vec))
		if err := mlx.SaveNpy(path, a); err != nil {
			return err
		}
		b := s.Track(mlx.LoadNpy(path))
		if s.Err() != nil {
			return s.Err()
		}
		closeRel(t, "npy", read(t, b), vec, 0)
		return nil
	})
}

// defaultModel is the GGUF file `make deps` puts in the model cache.
func defaultModel(t testing.TB) string {
	p := os.Getenv("GENKIT_DEFAULT_MODEL")
	if p == "" {
		cache := os.Getenv("GENKIT_CACHE_DIR")
		if cache == "" {
			base, err := os.UserCacheDir()
			if err != nil {
				t.Fatal(err)
			}
			cache = filepath.Join(base, "mlx-genkit")
		}
		p = filepath.Join(cache, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("default model missing (run `make deps`): %v", err)
	}
	return p
}

func TestDefaultModelGGUF(t *testing.T) {
	path := defaultModel(t)
	on(t, func(s *mlx.Scope) error {
		arrays, meta, err := mlx.LoadGGUF(path)
		if err != nil {
			return err
		}
		for _, a := range arrays {
			s.Track(a, nil)
		}
		// SmolLM2-135M: 30 blocks, hidden 576, FFN 1536, 9 heads / 3 KV heads
		// of 64, vocab 49152, tied embeddings. Block matrices are Q4_1 (4-bit
		// affine, group 32: 576 inputs pack into 72 uint32 words with 18
		// groups), token_embd Q8_0 (8-bit: 144 words), norms F32.
		want := map[string][]int{
			"token_embd.weight":  {49152, 144},
			"token_embd.scales":  {49152, 18},
			"output_norm.weight": {576},
		}
		for b := 0; b < 30; b++ {
			p := "blk." + itoa(b) + "."
			want[p+"attn_norm.weight"] = []int{576}
			want[p+"ffn_norm.weight"] = []int{576}
			want[p+"attn_q.weight"] = []int{576, 72}
			want[p+"attn_k.weight"] = []int{192, 72}
			want[p+"attn_v.weight"] = []int{192, 72}
			want[p+"attn_output.weight"] = []int{576, 72}
			want[p+"ffn_gate.weight"] = []int{1536, 72}
			want[p+"ffn_up.weight"] = []int{1536, 72}
			want[p+"ffn_down.weight"] = []int{576, 192}
			want[p+"attn_q.scales"] = []int{576, 18}
			want[p+"ffn_down.biases"] = []int{576, 48}
		}
		for name, shape := range want {
			a, ok := arrays[name]
			if !ok {
				return fmt.Errorf("tensor %s missing", name)
			}
			got := a.Shape()
			if len(got) != len(shape) {
				return fmt.Errorf("%s shape %v, want %v", name, got, shape)
			}
			for i := range got {
				if got[i] != shape[i] {
					return fmt.Errorf("%s shape %v, want %v", name, got, shape)
				}
			}
		}
		if _, ok := arrays["output.weight"]; ok {
			return errors.New("output.weight present: SmolLM2 ties its embeddings")
		}
		if arrays["blk.0.attn_q.weight"].Dtype() != mlx.Uint32 || arrays["blk.0.attn_norm.weight"].Dtype() != mlx.Float32 {
			return errors.New("unexpected dtypes")
		}
		for key, want := range map[string]int{"llama.block_count": 30, "llama.embedding_length": 576,
			"llama.attention.head_count": 9, "llama.attention.head_count_kv": 3, "llama.vocab_size": 49152} {
			if got, ok := meta[key].Int(); !ok || got != want {
				return fmt.Errorf("%s = %v, want %d", key, meta[key], want)
			}
		}
		if meta["general.architecture"].String != "llama" || len(meta["tokenizer.ggml.tokens"].Strings) != 49152 {
			return errors.New("unexpected metadata")
		}
		// A Q4_1 matrix dequantizes to finite values of plausible scale.
		q := &mlx.Quantized{Weight: arrays["blk.0.attn_q.weight"], Scales: arrays["blk.0.attn_q.scales"],
			Biases: arrays["blk.0.attn_q.biases"], GroupSize: 32, Bits: 4}
		d := s.Track(mlx.Dequantize(q, mlx.Float32))
		v := read(t, d)
		if len(v) != 576*576 {
			return fmt.Errorf("dequantized %d values", len(v))
		}
		var sum float64
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return errors.New("non-finite weight")
			}
			sum += float64(x) * float64(x)
		}
		if rms := math.Sqrt(sum / float64(len(v))); rms < 1e-3 || rms > 10 {
			return fmt.Errorf("weight rms %g", rms)
		}
		return nil
	})
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

func TestErrorsComeBackAndProcessGoesOn(t *testing.T) {
	on(t, func(s *mlx.Scope) error {
		a := s.Track(mlx.Zeros(mlx.Float32, 2, 3))
		b := s.Track(mlx.Zeros(mlx.Float32, 4, 5))
		_, err := mlx.Matmul(a, b)
		var me *mlx.Error
		if !errors.As(err, &me) || me.Op != "matmul" || me.Msg == "" {
			return fmt.Errorf("mismatched matmul: err = %v", err)
		}
		if _, err := mlx.Reshape(a, 7); err == nil {
			return errors.New("reshape to a wrong size succeeded")
		}
		if _, err := mlx.Add(nil, a); err == nil {
			return errors.New("nil input accepted")
		}
		_, _, err = mlx.LoadGGUF(filepath.Join(t.TempDir(), "missing.gguf"))
		if err == nil {
			return errors.New("loading a missing file succeeded")
		}
		// The thread still works.
		c := s.Track(mlx.Add(a, a))
		if v := read(t, c); len(v) != 6 {
			return errors.New("op after an error failed")
		}
		return nil
	})
	// A panic inside Do is recovered and the MLX thread survives.
	if err := mlx.Do(context.Background(), func() error { var m map[string]int; m["x"] = 1; return nil }); err == nil {
		t.Fatal("panic not reported")
	}
	on(t, func(s *mlx.Scope) error { _ = s.Track(mlx.Zeros(mlx.Float32, 1)); return nil })
}

func TestOpsOutsideTheThreadFail(t *testing.T) {
	_, err := mlx.Zeros(mlx.Float32, 2)
	if !errors.Is(err, mlx.ErrNotOnThread) {
		t.Fatalf("op outside Do: err = %v", err)
	}
}

func TestLiveArrayCounter(t *testing.T) {
	base := mlx.LiveArrays()
	var arrays []*mlx.Array
	err := mlx.Do(context.Background(), func() error {
		for i := 0; i < 10; i++ {
			a, err := mlx.Full(float64(i), mlx.Float32, 3)
			if err != nil {
				return err
			}
			arrays = append(arrays, a)
		}
		return nil
	})

	if err != nil {
		t.Fatal(err)
	}
	if got := mlx.LiveArrays() - base; got != 10 {
		t.Fatalf("live arrays grew by %d, want 10", got)
	}
	mlx.Free(arrays...) // from this goroutine: Free routes itself to the MLX thread
	if got := mlx.LiveArrays(); got != base {
		t.Fatalf("live arrays %d, want %d", got, base)
	}
}

func TestConcurrentCallers(t *testing.T) {
	base := mlx.LiveArrays()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := 0; g < 100; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			errs <- mlx.Do(context.Background(), func() error {
				s := mlx.NewScope()
				defer s.Close()
				a := s.Track(mlx.Full(float64(g), mlx.Float32, 8, 8))
				b := s.Track(mlx.Full(2, mlx.Float32, 8, 8))
				c := s.Track(mlx.Matmul(a, b))
				if s.Err() != nil {
					return s.Err()
				}
				v, err := c.Float32s()
				if err != nil {
					return err
				}
				if want := float32(g * 2 * 8); v[0] != want || v[63] != want {
					return errors.New("wrong result under concurrency")
				}
				return nil
			})

		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := mlx.LiveArrays(); got != base {
		t.Fatalf("live arrays %d, want %d", got, base)
	}
}

func TestShapesAndIndexing(t *testing.T) {
	on(t, func(s *mlx.Scope) error {
		x := s.Track(mlx.Arange(0, 24, 1, mlx.Float32))
		r := s.Track(mlx.Reshape(x, 2, 3, 4))
		tr := s.Track(mlx.Transpose(r, 0, 2, 1))
		if sh := tr.Shape(); sh[0] != 2 || sh[1] != 4 || sh[2] != 3 {
			return fmt.Errorf("transpose shape %v", sh)
		}
		v := read(t, s.Track(mlx.Contiguous(tr)))
		// tr[0][1][2] = r[0][2][1] = 9
		if v[0*12+1*3+2] != 9 {
			return fmt.Errorf("transpose value %v", v[5])
		}
		sl := read(t, s.Track(mlx.Slice(r, []int{1, 0, 1}, []int{2, 3, 4}, []int{1, 2, 2})))
		closeRel(t, "slice", sl, []float32{13, 15, 21, 23}, 0)
		idx := s.Track(mlx.FromInt32s([]int32{2, 0}))
		tk := read(t, s.Track(mlx.Take(s.Track(mlx.Reshape(x, 6, 4)), idx, 0)))
		closeRel(t, "take", tk, []float32{8, 9, 10, 11, 0, 1, 2, 3}, 0)
		cat := s.Track(mlx.Concatenate(0, x, x))
		if cat.Size() != 48 {
			return fmt.Errorf("concatenate size %d", cat.Size())
		}
		z := s.Track(mlx.Zeros(mlx.Float32, 2, 4))
		one := s.Track(mlx.Full(1, mlx.Float32, 1, 2))
		up := read(t, s.Track(mlx.SliceUpdate(z, one, []int{1, 1}, []int{2, 3}, nil)))
		closeRel(t, "slice_update", up, []float32{0, 0, 0, 0, 0, 1, 1, 0}, 0)
		cs := read(t, s.Track(mlx.Cumsum(s.Track(mlx.Arange(1, 5, 1, mlx.Float32)), 0, false, true)))
		closeRel(t, "cumsum", cs, []float32{1, 3, 6, 10}, 0)
		srt, err := s.Track(mlx.Argsort(s.Track(mlx.FromFloat32s([]float32{3, 1, 2})), 0)).Int32s()
		if err != nil {
			return err
		}
		if srt[0] != 1 || srt[1] != 2 || srt[2] != 0 {
			return fmt.Errorf("argsort %v", srt)
		}
		return s.Err()
	})
}

func TestRandomIsReproducible(t *testing.T) {
	var first, second []float32
	for _, dst := range []*[]float32{&first, &second} {
		on(t, func(s *mlx.Scope) error {
			k := s.Track(mlx.RandomKey(42))
			u := s.Track(mlx.RandomUniform(k, mlx.Float32, 1000))
			*dst = read(t, u)
			return nil
		})
	}
	var mean float64
	for i := range first {
		if first[i] != second[i] {
			t.Fatal("same key gave different numbers")
		}
		if first[i] < 0 || first[i] >= 1 {
			t.Fatalf("uniform value %g out of [0,1)", first[i])
		}
		mean += float64(first[i]) / 1000
	}
	if math.Abs(mean-0.5) > 0.05 {
		t.Fatalf("uniform mean %g", mean)
	}
}

func TestMemoryAndDevice(t *testing.T) {
	on(t, func(s *mlx.Scope) error {
		a := s.Track(mlx.Zeros(mlx.Float32, 1024, 1024))
		if err := mlx.Eval(a); err != nil {
			return err
		}
		m, err := mlx.Memory()
		if err != nil {
			return err
		}
		if m.Active < 4<<20 || m.Peak < m.Active {
			return fmt.Errorf("memory counters %+v", m)
		}
		ok, err := mlx.DeviceAvailable(mlx.CPU)
		if err != nil || !ok {
			return fmt.Errorf("cpu not available: %v", err)
		}
		if mlx.Version() != "0.32.4" {
			return fmt.Errorf("MLX version %s, want the pinned 0.32.4", mlx.Version())
		}
		return nil
	})
}

// TestRowProduct: the BLAS row product equals the matmul for 1 and 3 rows,
// with wT a transposed view (the engine's weights) or row-major.
func TestRowProduct(t *testing.T) {
	if !mlx.RowProductAvailable() {
		t.Skip("no cblas_sgemv in this process (the row product is a CPU path)")
	}
	K, N := 96, 40
	rng := rand.New(rand.NewSource(3))
	w := randn(rng, N*K)
	for _, rows := range []int{1, 3} {
		x := randn(rng, rows*K)
		on(t, func(s *mlx.Scope) error {
			wa := s.Track(mlx.FromFloat32s(w, N, K))
			xa := s.Track(mlx.FromFloat32s(x, 1, rows, K))
			views := map[string]*mlx.Array{
				"transposed view": s.Track(mlx.Transpose(wa)),
				"row-major":       s.Track(mlx.Contiguous(s.Track(mlx.Transpose(wa)))),
			}
			for name, wT := range views {
				want, err := s.Track(mlx.Matmul(xa, wT)).Float32s()
				if err != nil {
					return err
				}
				r := s.Track(mlx.RowProduct(xa, wT))
				if err := s.Err(); err != nil {
					return err
				}
				if sh := r.Shape(); len(sh) != 3 || sh[1] != rows || sh[2] != N {
					t.Errorf("%s, %d rows: shape %v", name, rows, sh)
				}
				got, err := r.Float32s()
				if err != nil {
					return err
				}
				closeRel(t, fmt.Sprintf("row product (%s, %d rows)", name, rows), got, want, 1e-5)
			}
			return s.Err()
		})
	}
}

// TestQRowProduct: the 4- and 8-bit row kernels equal quantized_matmul
// (groups of 32, 64 and 128; 1 to 7 rows; an output count that leaves a
// tail after the kernels' blocks of four output rows; an input length that
// is no whole number of kernel blocks, which takes the scalar path).
func TestQRowProduct(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for _, gb := range [][4]int{{32, 4, 256, 50}, {64, 4, 256, 50}, {128, 4, 256, 51}, {32, 8, 256, 50}, {64, 8, 256, 49},
		{128, 8, 256, 50}, {32, 4, 96, 9}} {
		group, bits, K, N := gb[0], gb[1], gb[2], gb[3]
		w := randn(rng, N*K)
		for _, rows := range []int{1, 2, 3, 4, 7} {
			x := randn(rng, rows*K)
			on(t, func(s *mlx.Scope) error {
				wa := s.Track(mlx.FromFloat32s(w, N, K))
				q, err := mlx.Quantize(wa, group, bits)
				if err != nil {
					return err
				}
				defer q.Free()
				xa := s.Track(mlx.FromFloat32s(x, rows, K))
				want, err := s.Track(mlx.QuantizedMatmul(xa, q, true)).Float32s()
				if err != nil {
					return err
				}
				got, err := s.Track(mlx.QRowProduct(xa, q)).Float32s()
				if err != nil {
					return err
				}
				closeRel(t, fmt.Sprintf("%d-bit row product (group %d, %d rows)", bits, group, rows), got, want, 1e-5)
				return s.Err()
			})
		}
	}
}
