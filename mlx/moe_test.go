package mlx_test

import (
	"context"
	"errors"
	"math/rand"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/mlx"
)

// moeCase is a stack of E expert matrices w [E, N, K] ([out, in]) and rows
// x [T, K] that each chose k experts (idx [T, k]).
type moeCase struct {
	E, N, K, T, k int
	w, x          []float32
	idx           []int32
}

func newMoECase(r *rand.Rand, E, N, K, T, k int) moeCase {
	c := moeCase{E: E, N: N, K: K, T: T, k: k, w: randn(r, E*N*K), x: randn(r, T*K)}
	for t := 0; t < T; t++ {
		for _, e := range r.Perm(E)[:k] {
			c.idx = append(c.idx, int32(e))
		}
	}
	return c
}

// want is x[t] @ w[idx[t,j]]^T in Go, [T, k, N], for weights w (dense
// values: the originals or their dequantization).
func (c moeCase) want(w []float32) []float32 {
	out := make([]float32, c.T*c.k*c.N)
	for t := 0; t < c.T; t++ {
		for j := 0; j < c.k; j++ {
			e := int(c.idx[t*c.k+j])
			for n := 0; n < c.N; n++ {
				var acc float64
				for i := 0; i < c.K; i++ {
					acc += float64(c.x[t*c.K+i]) * float64(w[(e*c.N+n)*c.K+i])
				}
				out[(t*c.k+j)*c.N+n] = float32(acc)
			}
		}
	}
	return out
}

// TestGatherMM: each row times the transposed matrices of its chosen
// experts equals the Go product, for one row (a decode step) and many,
// with the rows as given and grouped by expert (MoESort, sorted indices,
// then restored).
func TestGatherMM(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for _, sh := range []struct{ T, k int }{{1, 2}, {5, 3}, {40, 4}} {
		c := newMoECase(r, 8, 24, 64, sh.T, sh.k)
		want := c.want(c.w)
		on(t, func(s *mlx.Scope) error {
			w := s.Track(mlx.FromFloat32s(c.w, c.E, c.N, c.K))
			wT := s.Track(mlx.SwapAxes(w, 1, 2)) // [E, K, N]
			x := s.Track(mlx.FromFloat32s(c.x, c.T, 1, 1, c.K))
			idx := s.Track(mlx.FromInt32s(c.idx, c.T, c.k))
			got := read(t, s.Track(mlx.GatherMM(x, wT, nil, idx, false))) // [T, k, 1, N]
			closeRel(t, "gather_mm", got, want, 1e-5)

			x3 := s.Track(mlx.Reshape(x, c.T, 1, c.K))
			xs, experts, inv, err := mlx.MoESort(x3, idx)
			if err != nil {
				return err
			}
			s.Track(xs, nil)
			s.Track(experts, nil)
			s.Track(inv, nil)
			ex, err := experts.Int32s()
			if err != nil {
				return err
			}
			for i := 1; i < len(ex); i++ {
				if ex[i] < ex[i-1] {
					t.Fatalf("T=%d: sorted experts %v are not ascending", c.T, ex)
				}
			}
			y := s.Track(mlx.GatherMM(xs, wT, nil, experts, true)) // [T*k, 1, N]
			got = read(t, s.Track(mlx.Take(y, inv, 0)))
			closeRel(t, "gather_mm sorted", got, want, 1e-5)
			return nil
		})
	}
}

// TestGatherQMM: the quantized stack's products equal the Go product with
// the dequantized weights, for 4 and 8 bits, unsorted and sorted.
func TestGatherQMM(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	for _, bits := range []int{4, 8} {
		for _, sh := range []struct{ T, k int }{{1, 2}, {33, 2}} {
			c := newMoECase(r, 6, 32, 128, sh.T, sh.k)
			on(t, func(s *mlx.Scope) error {
				w := s.Track(mlx.FromFloat32s(c.w, c.E, c.N, c.K))
				q, err := mlx.Quantize(w, 64, bits)
				if err != nil {
					return err
				}
				defer q.Free()
				if sh := q.Weight.Shape(); len(sh) != 3 || sh[0] != c.E || sh[1] != c.N || sh[2] != c.K*bits/32 {
					t.Fatalf("quantized stack has shape %v", sh)
				}
				deq := read(t, s.Track(mlx.Dequantize(q, mlx.Float32)))
				want := c.want(deq)
				x := s.Track(mlx.FromFloat32s(c.x, c.T, 1, 1, c.K))
				idx := s.Track(mlx.FromInt32s(c.idx, c.T, c.k))
				got := read(t, s.Track(mlx.GatherQMM(x, q, nil, idx, true, false)))
				closeRel(t, "gather_qmm", got, want, 1e-4)
				xs, experts, inv, err := mlx.MoESort(s.Track(mlx.Reshape(x, c.T, 1, c.K)), idx)
				if err != nil {
					return err
				}
				s.Track(xs, nil)
				s.Track(experts, nil)
				s.Track(inv, nil)
				y := s.Track(mlx.GatherQMM(xs, q, nil, experts, true, true))
				got = read(t, s.Track(mlx.Take(y, inv, 0)))
				closeRel(t, "gather_qmm sorted", got, want, 1e-4)
				return nil
			})
		}
	}
}

// TestGatherErrors: bad inputs come back as errors naming the op, not
// crashes, and calls off the MLX thread are refused; a well-formed call on
// the same arrays succeeds.
func TestGatherErrors(t *testing.T) {
	on(t, func(s *mlx.Scope) error {
		wT := s.Track(mlx.Zeros(mlx.Float32, 4, 16, 8)) // [E, K, N]
		x := s.Track(mlx.Zeros(mlx.Float32, 3, 1, 1, 16))
		bad := s.Track(mlx.Zeros(mlx.Float32, 3, 1, 1, 12)) // K 12, not 16
		idx := s.Track(mlx.FromInt32s([]int32{0, 1, 2, 3, 1, 0}, 3, 2))
		if _, err := mlx.GatherMM(bad, wT, nil, idx, false); err == nil || !strings.Contains(err.Error(), "gather_mm") {
			t.Errorf("mismatched inner dimension: err %v, want a gather_mm error", err)
		}
		if _, err := mlx.GatherMM(x, wT, nil, s.Track(mlx.Zeros(mlx.Float32, 3, 2)), false); err == nil {
			t.Error("float indices: no error")
		}
		if _, err := mlx.GatherQMM(x, nil, nil, idx, true, false); err == nil {
			t.Error("nil quantized stack: no error")
		}
		freed := s.Track(mlx.Zeros(mlx.Int32, 3, 2))
		freed.Free()
		if _, err := mlx.GatherMM(x, wT, nil, freed, false); err == nil {
			t.Error("freed indices: no error")
		}
		if _, _, _, err := mlx.MoESort(x, idx); err == nil || !strings.Contains(err.Error(), "[N, 1, D]") {
			t.Errorf("MoESort of a 4-axis x: err %v, want the shape error", err)
		}
		y, err := mlx.GatherMM(x, wT, nil, idx, false)
		if err != nil {
			return err
		}
		s.Track(y, nil)
		if sh := y.Shape(); len(sh) != 4 || sh[0] != 3 || sh[1] != 2 || sh[2] != 1 || sh[3] != 8 {
			t.Errorf("shape %v, want [3 2 1 8]", sh)
		}
		return nil
	})
	var x, w, idx *mlx.Array
	if err := mlx.Do(context.Background(), func() error {
		var err error
		if x, err = mlx.Zeros(mlx.Float32, 1, 1, 1, 4); err != nil {
			return err
		}
		if w, err = mlx.Zeros(mlx.Float32, 2, 4, 4); err != nil {
			return err
		}
		idx, err = mlx.FromInt32s([]int32{1}, 1, 1)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = mlx.Do(context.Background(), func() error { mlx.Free(x, w, idx); return nil }) }()
	if _, err := mlx.GatherMM(x, w, nil, idx, false); !errors.Is(err, mlx.ErrNotOnThread) {
		t.Errorf("off the MLX thread: err %v, want ErrNotOnThread", err)
	}
}
