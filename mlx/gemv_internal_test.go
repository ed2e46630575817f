package mlx

import (
	"context"
	"strings"
	"testing"
)

// TestQGEMVDecline runs the quantized product kernel's checks on any device
// (CI's CPU included): it takes a materialised 4-bit weight in groups of 32
// and declines a group of 96 (a value's group is found by a shift), a lazy
// weight, 3-bit values and a group size that does not match the scales.
func TestQGEMVDecline(t *testing.T) {
	err := Do(context.Background(), func() error {
		s := NewScope()
		defer s.Close()
		x := s.Track(Full(1, Float16, 1, 192))
		w := s.Track(Full(0.25, Float16, 16, 192))
		if err := s.Err(); err != nil {
			return err
		}
		q32, err := Quantize(w, 32, 4)
		if err != nil {
			return err
		}
		defer q32.Free()
		why, err := qgemvDecline(x, q32) // not evaluated yet
		if err != nil {
			return err
		}
		if !strings.Contains(why, "materialised") {
			t.Errorf("lazy weight: %q, want it declined as not materialised", why)
		}
		if err := Eval(x, q32.Weight, q32.Scales, q32.Biases); err != nil {
			return err
		}
		// MLX's CPU buffers start 8 bytes past 16 (its GPU buffers are
		// aligned): there the same weight words go 8 bytes into a buffer,
		// so the kernels' alignment holds.
		packed := q32.Weight
		if why, err := qgemvDecline(x, q32); err != nil {
			return err
		} else if strings.Contains(why, "aligned") {
			words, err := packed.Uint32s()
			if err != nil {
				return err
			}
			flat := s.Track(FromUint32s(append([]uint32{0, 0}, words...), len(words)+2))
			tail := s.Track(Slice(flat, []int{2}, []int{len(words) + 2}, []int{1}))
			packed = s.Track(Reshape(tail, 16, len(words)/16))
		}
		scales := s.Track(Full(0.1, Float16, 16, 2))
		biases := s.Track(Full(0, Float16, 16, 2))
		if err := s.Err(); err != nil {
			return err
		}
		if err := Eval(packed, scales, biases); err != nil {
			return err
		}
		for _, c := range []struct {
			name string
			q    *Quantized
			want string // "": taken
		}{
			{"group 32", &Quantized{Weight: packed, Scales: q32.Scales, Biases: q32.Biases, GroupSize: 32, Bits: 4}, ""},
			{"group 96", &Quantized{Weight: packed, Scales: scales, Biases: biases, GroupSize: 96, Bits: 4}, "not a power of two"},
			{"3 bits", &Quantized{Weight: packed, Scales: q32.Scales, Biases: q32.Biases, GroupSize: 32, Bits: 3}, "4- or 8-bit"},
			{"group 64 named for scales of 32", &Quantized{Weight: packed, Scales: q32.Scales, Biases: q32.Biases, GroupSize: 64, Bits: 4}, "group size does not match"},
		} {
			why, err := qgemvDecline(x, c.q)
			if err != nil {
				return err
			}
			if c.want == "" && why != "" {
				t.Errorf("%s: declined (%s), want the kernel", c.name, why)
			}
			if c.want != "" && !strings.Contains(why, c.want) {
				t.Errorf("%s: %q, want a decline naming %q", c.name, why, c.want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
