package engine

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/mlx-genkit/genkit/mlx"
)

// TestQMMOneGroupGuard: qmmOneGroupBroken expands the weights whose
// quantized product is wrong on this device and leaves the rest. For
// weights of 64-wide rows in one group of 64, in groups of 32, and 128-wide
// rows in groups of 64 (4 and 8 bits), a product of seven rows through
// quantized_matmul is compared with the product of the dequantized weights:
// the guard must be on where they differ and off where they agree (on the
// CPU nothing differs and the guard stays off; on CUDA, mlx-cuda-13 0.32.4,
// the one-group-of-64 weights differ and the guard is on; a fixed MLX fails
// the test, saying the guard can go). Rows of one group of 32 or of 128 were
// not measured on CUDA: the guard expands them there too, and for them the
// test only asks that no wrong product gets past it.
func TestQMMOneGroupGuard(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	for _, tc := range []struct {
		k, group, bits int
		cover          bool // unmeasured one-group shapes: the guard must cover any error
	}{{64, 64, 4, false}, {64, 64, 8, false}, {64, 32, 4, false}, {128, 64, 4, false}, {128, 64, 8, false},
		{32, 32, 4, true}, {128, 128, 4, true}, {128, 128, 8, true}} {
		t.Run(fmt.Sprintf("k%d_g%d_b%d", tc.k, tc.group, tc.bits), func(t *testing.T) {
			onMLX(t, func(s *mlx.Scope) error {
				const n, m = 32, 7
				wv := make([]float32, n*tc.k)
				xv := make([]float32, m*tc.k)
				for i := range wv {
					wv[i] = float32(r.NormFloat64())
				}
				for i := range xv {
					xv[i] = float32(r.NormFloat64())
				}
				w := s.Track(mlx.FromFloat32s(wv, n, tc.k))
				x := s.Track(mlx.FromFloat32s(xv, m, tc.k))
				if s.Err() != nil {
					return s.Err()
				}
				q, err := mlx.Quantize(w, tc.group, tc.bits)
				if err != nil {
					return err
				}
				defer q.Free()
				got := s.Track(mlx.QuantizedMatmul(x, q, true))
				dense := s.Track(mlx.Dequantize(q, mlx.Float32))
				want := s.Track(mlx.Matmul(x, s.Track(mlx.Transpose(dense))))
				if s.Err() != nil {
					return s.Err()
				}
				d, err := s.Track(mlx.Max(s.Track(mlx.Abs(s.Track(mlx.Subtract(got, want)))), false)).Float32s()
				if err != nil {
					return err
				}
				wrong := len(d) != 1 || math.IsNaN(float64(d[0])) || d[0] > 1e-3
				guard := qmmOneGroupBroken(q)
				switch {
				case wrong && !guard:
					t.Errorf("quantized product off by %v and the guard lets it through", d)
				case guard && !wrong && !tc.cover:
					t.Errorf("quantized product right (off by %v) but the guard expands it", d)
				}
				return nil
			})
		})
	}
}
