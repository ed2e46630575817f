package mlx_test

import (
	"math/rand"
	"testing"

	"github.com/mlx-genkit/genkit/mlx"
)

// BenchmarkOpOverhead measures one small op through cgo (graph building only).
func BenchmarkOpOverhead(b *testing.B) {
	err := mlx.Do(func() error {
		a, err := mlx.Zeros(mlx.Float32, 4)
		if err != nil {
			return err
		}
		defer a.Free()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			c, err := mlx.Add(a, a)
			if err != nil {
				return err
			}
			c.Free()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDoRoundTrip measures handing work to the MLX thread from another goroutine.
func BenchmarkDoRoundTrip(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if err := mlx.Do(func() error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

func benchMatmul(b *testing.B, rows int, quantized bool) {
	r := rand.New(rand.NewSource(1))
	const out, in = 1536, 576
	err := mlx.Do(func() error {
		s := mlx.NewScope()
		defer s.Close()
		w := s.Track(mlx.FromFloat32s(randn(r, out*in), out, in))
		x := s.Track(mlx.FromFloat32s(randn(r, rows*in), rows, in))
		wt := s.Track(mlx.Transpose(w))
		q, err := mlx.Quantize(w, 32, 4)
		if err != nil {
			return err
		}
		defer q.Free()
		if err := mlx.Eval(w, x, q.Weight, q.Scales, q.Biases); err != nil {
			return err
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			var y *mlx.Array
			if quantized {
				y, err = mlx.QuantizedMatmul(x, q, true)
			} else {
				y, err = mlx.Matmul(x, wt)
			}
			if err != nil {
				return err
			}
			if err := mlx.Eval(y); err != nil {
				return err
			}
			y.Free()
		}
		return s.Err()
	})
	if err != nil {
		b.Fatal(err)
	}
}

// The FFN up-projection shape of SmolLM2: [rows, 576] x [576, 1536].
func BenchmarkMatmul576x1536Row(b *testing.B)             { benchMatmul(b, 1, false) }
func BenchmarkQuantizedMatmul576x1536Row(b *testing.B)    { benchMatmul(b, 1, true) }
func BenchmarkMatmul576x1536Rows64(b *testing.B)          { benchMatmul(b, 64, false) }
func BenchmarkQuantizedMatmul576x1536Rows64(b *testing.B) { benchMatmul(b, 64, true) }
