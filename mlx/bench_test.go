package mlx_test

import (
	"context"
	"math/rand"
	"testing"

	"github.com/mlx-genkit/genkit/mlx"
)

// BenchmarkOpOverhead measures one small op through cgo (graph building only).
func BenchmarkOpOverhead(b *testing.B) {
	err := mlx.Do(context.Background(), func() error {
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
		if err := mlx.Do(context.Background(), func() error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

func benchMatmul(b *testing.B, rows int, quantized bool) {
	r := rand.New(rand.NewSource(1))
	const out, in = 1536, 576
	err := mlx.Do(context.Background(), func() error {
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

// benchQRow times the CPU row kernel (QRowProduct) on [rows, in] x a
// quantized [out, in], reporting weights read per second.
func benchQRow(b *testing.B, rows, out, in, group, bits int) {
	r := rand.New(rand.NewSource(1))
	err := mlx.Do(context.Background(), func() error {
		s := mlx.NewScope()
		defer s.Close()
		w := s.Track(mlx.FromFloat32s(randn(r, out*in), out, in))
		x := s.Track(mlx.FromFloat32s(randn(r, rows*in), rows, in))
		q, err := mlx.Quantize(w, group, bits)
		if err != nil {
			return err
		}
		defer q.Free()
		if err := mlx.Eval(x, q.Weight, q.Scales, q.Biases); err != nil {
			return err
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			y, err := mlx.QRowProduct(x, q)
			if err != nil {
				return err
			}
			if err := mlx.Eval(y); err != nil {
				return err
			}
			y.Free()
		}
		b.ReportMetric(float64(out*in)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gweights/s")
		return s.Err()
	})

	if err != nil {
		b.Fatal(err)
	}
}

// SmolLM2's fused gate/up projection (4-bit, group 32) and its tied 8-bit
// head: one row, the base + steered pair and an eight-lane sweep.
func BenchmarkQRowGateUp1(b *testing.B) { benchQRow(b, 1, 3072, 576, 32, 4) }
func BenchmarkQRowGateUp2(b *testing.B) { benchQRow(b, 2, 3072, 576, 32, 4) }
func BenchmarkQRowGateUp8(b *testing.B) { benchQRow(b, 8, 3072, 576, 32, 4) }
func BenchmarkQRowHead8(b *testing.B)   { benchQRow(b, 8, 49152, 576, 32, 8) }
func BenchmarkQRowHead1(b *testing.B)   { benchQRow(b, 1, 49152, 576, 32, 8) }
func BenchmarkQRowHead2(b *testing.B)   { benchQRow(b, 2, 49152, 576, 32, 8) }
func BenchmarkQRowTiny(b *testing.B)    { benchQRow(b, 1, 32, 64, 32, 4) }
