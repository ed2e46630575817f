package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Why genkit dequantizes these types itself: MLX's GGUF reader (through the
// gguflib it bundles) turns Q2_K, Q4_K and Q6_K into float16 (rounding
// ggml's float32 values; its Q4_K values are plainly wrong: relative errors
// up to 100 on llama.cpp's own Q4_K files, see TestMLXReaderKQuants in
// mlx) and fails on Q3_K, Q5_K, Q5_0, Q5_1 and IQ4_XS. The functions below
// follow the block layouts of ggml (ggml-common.h) and compute each value
// with the same float32 operations in the same order as ggml's reference
// dequantize_row_* functions, so the results are bit-identical to them.

// Dequantize expands n values of ggml type typ stored in raw into float32.
// Every type in Supported is handled.
func Dequantize(typ uint32, raw []byte, n int) ([]float32, error) {
	bs, ok := blockSizes[typ]
	if !ok || !supported[typ] {
		return nil, fmt.Errorf("ggml type %s cannot be dequantized", typeName(typ))
	}
	if n < 0 || uint64(n)%bs[0] != 0 {
		return nil, fmt.Errorf("%d values are not a whole number of %s blocks (%d)", n, typeName(typ), bs[0])
	}
	blocks := uint64(n) / bs[0]
	if uint64(len(raw)) != blocks*bs[1] {
		return nil, fmt.Errorf("%s: %d bytes for %d values (want %d)", typeName(typ), len(raw), n, blocks*bs[1])
	}
	out := make([]float32, n)
	f, ok := dequantizers[typ]
	if !ok {
		return nil, fmt.Errorf("ggml type %s cannot be dequantized", typeName(typ))
	}
	per, size := int(bs[0]), int(bs[1])
	for b := 0; b < int(blocks); b++ {
		f(raw[b*size:(b+1)*size], out[b*per:(b+1)*per])
	}
	return out, nil
}

var dequantizers = map[uint32]func(x []byte, y []float32){
	TypeF32: func(x []byte, y []float32) {
		y[0] = math.Float32frombits(binary.LittleEndian.Uint32(x))
	},
	TypeF16:    func(x []byte, y []float32) { y[0] = half(x) },
	TypeBF16:   func(x []byte, y []float32) { y[0] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(x)) << 16) },
	TypeQ4_0:   dequantQ4_0,
	TypeQ4_1:   dequantQ4_1,
	TypeQ5_0:   dequantQ5_0,
	TypeQ5_1:   dequantQ5_1,
	TypeQ8_0:   dequantQ8_0,
	TypeQ2_K:   dequantQ2K,
	TypeQ3_K:   dequantQ3K,
	TypeQ4_K:   dequantQ4K,
	TypeQ5_K:   dequantQ5K,
	TypeQ6_K:   dequantQ6K,
	TypeIQ4_NL: dequantIQ4NL,
	TypeIQ4_XS: dequantIQ4XS,
}

// half converts the IEEE binary16 value in b[0:2] (little-endian) to
// float32 (exactly: every half is a float32).
func half(b []byte) float32 {
	h := binary.LittleEndian.Uint16(b)
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf, NaN
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal half: normalise.
	e := uint32(113)
	for mant&0x400 == 0 {
		mant <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
}

// Q4_0: f16 d, u8 qs[16]; w = (q - 8) * d.
func dequantQ4_0(x []byte, y []float32) {
	d := half(x)
	qs := x[2:18]
	for j := 0; j < 16; j++ {
		y[j] = float32(int(qs[j]&15)-8) * d
		y[j+16] = float32(int(qs[j]>>4)-8) * d
	}
}

// Q4_1: f16 d, f16 m, u8 qs[16]; w = q * d + m.
func dequantQ4_1(x []byte, y []float32) {
	d, m := half(x), half(x[2:])
	qs := x[4:20]
	for j := 0; j < 16; j++ {
		y[j] = float32(float32(qs[j]&15)*d) + m
		y[j+16] = float32(float32(qs[j]>>4)*d) + m
	}
}

// Q5_0: f16 d, u8 qh[4] (fifth bits), u8 qs[16]; w = (q - 16) * d.
func dequantQ5_0(x []byte, y []float32) {
	d := half(x)
	qh := binary.LittleEndian.Uint32(x[2:])
	qs := x[6:22]
	for j := 0; j < 16; j++ {
		h0 := byte(qh>>uint(j)<<4) & 0x10
		h1 := byte(qh>>uint(j+12)) & 0x10
		y[j] = float32(int(qs[j]&15|h0)-16) * d
		y[j+16] = float32(int(qs[j]>>4|h1)-16) * d
	}
}

// Q5_1: f16 d, f16 m, u8 qh[4], u8 qs[16]; w = q * d + m.
func dequantQ5_1(x []byte, y []float32) {
	d, m := half(x), half(x[2:])
	qh := binary.LittleEndian.Uint32(x[4:])
	qs := x[8:24]
	for j := 0; j < 16; j++ {
		h0 := byte(qh>>uint(j)<<4) & 0x10
		h1 := byte(qh>>uint(j+12)) & 0x10
		y[j] = float32(float32(qs[j]&15|h0)*d) + m
		y[j+16] = float32(float32(qs[j]>>4|h1)*d) + m
	}
}

// Q8_0: f16 d, i8 qs[32]; w = q * d.
func dequantQ8_0(x []byte, y []float32) {
	d := half(x)
	for j := 0; j < 32; j++ {
		y[j] = float32(int8(x[2+j])) * d
	}
}

// Q2_K: u8 scales[16] (low nibble scale, high nibble min), u8 qs[64]
// (2-bit values), f16 d, f16 dmin; 16 sub-blocks of 16.
func dequantQ2K(x []byte, y []float32) {
	scales, q := x[0:16], x[16:80]
	d, dmin := half(x[80:]), half(x[82:])
	is, o := 0, 0
	for n := 0; n < 256; n += 128 {
		shift := uint(0)
		for j := 0; j < 4; j++ {
			for half := 0; half < 2; half++ {
				sc := scales[is]
				is++
				dl, ml := d*float32(sc&15), dmin*float32(sc>>4)
				for l := 0; l < 16; l++ {
					y[o] = float32(dl*float32((q[l+16*half]>>shift)&3)) - ml
					o++
				}
			}
			shift += 2
		}
		q = q[32:]
	}
}

// Q3_K: u8 hmask[32] (third bits), u8 qs[64] (low 2 bits), u8 scales[12]
// (16 six-bit scales), f16 d; 16 sub-blocks of 16.
func dequantQ3K(x []byte, y []float32) {
	hm, q, packed := x[0:32], x[32:96], x[96:108]
	d := half(x[108:])
	var scales [16]int8
	for i := 0; i < 16; i++ {
		var low, high byte
		if i < 8 {
			low = packed[i] & 15
		} else {
			low = packed[i-8] >> 4
		}
		high = (packed[8+i%4] >> (2 * uint(i/4))) & 3
		scales[i] = int8(low|high<<4) - 32
	}
	is, o := 0, 0
	m := byte(1)
	for n := 0; n < 256; n += 128 {
		shift := uint(0)
		for j := 0; j < 4; j++ {
			for half := 0; half < 2; half++ {
				dl := d * float32(scales[is])
				is++
				for l := 0; l < 16; l++ {
					v := int((q[l+16*half] >> shift) & 3)
					if hm[l+16*half]&m == 0 {
						v -= 4
					}
					y[o] = dl * float32(v)
					o++
				}
			}
			shift += 2
			m <<= 1
		}
		q = q[32:]
	}
}

// scaleMinK4 unpacks the j-th six-bit scale and min of a Q4_K/Q5_K block.
func scaleMinK4(j int, q []byte) (byte, byte) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&15 | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}

// Q4_K: f16 d, f16 dmin, u8 scales[12] (8 six-bit scales and mins),
// u8 qs[128]; 8 sub-blocks of 32: w = d*sc*q - dmin*m.
func dequantQ4K(x []byte, y []float32) {
	d, dmin := half(x), half(x[2:])
	scales, q := x[4:16], x[16:144]
	o := 0
	for is := 0; is < 8; is += 2 {
		sc, m := scaleMinK4(is, scales)
		d1, m1 := d*float32(sc), dmin*float32(m)
		sc, m = scaleMinK4(is+1, scales)
		d2, m2 := d*float32(sc), dmin*float32(m)
		for l := 0; l < 32; l++ {
			y[o+l] = float32(d1*float32(q[l]&15)) - m1
			y[o+32+l] = float32(d2*float32(q[l]>>4)) - m2
		}
		o += 64
		q = q[32:]
	}
}

// Q5_K: f16 d, f16 dmin, u8 scales[12], u8 qh[32] (fifth bits),
// u8 qs[128]; 8 sub-blocks of 32.
func dequantQ5K(x []byte, y []float32) {
	d, dmin := half(x), half(x[2:])
	scales, qh, ql := x[4:16], x[16:48], x[48:176]
	o := 0
	u1, u2 := byte(1), byte(2)
	for is := 0; is < 8; is += 2 {
		sc, m := scaleMinK4(is, scales)
		d1, m1 := d*float32(sc), dmin*float32(m)
		sc, m = scaleMinK4(is+1, scales)
		d2, m2 := d*float32(sc), dmin*float32(m)
		for l := 0; l < 32; l++ {
			v1, v2 := ql[l]&15, ql[l]>>4
			if qh[l]&u1 != 0 {
				v1 += 16
			}
			if qh[l]&u2 != 0 {
				v2 += 16
			}
			y[o+l] = float32(d1*float32(v1)) - m1
			y[o+32+l] = float32(d2*float32(v2)) - m2
		}
		o += 64
		ql = ql[32:]
		u1 <<= 2
		u2 <<= 2
	}
}

// Q6_K: u8 ql[128] (low 4 bits), u8 qh[64] (high 2 bits), i8 scales[16],
// f16 d; 16 sub-blocks of 16: w = d * scale * (q - 32).
func dequantQ6K(x []byte, y []float32) {
	ql, qh, sc := x[0:128], x[128:192], x[192:208]
	d := half(x[208:])
	o := 0
	for n := 0; n < 256; n += 128 {
		for l := 0; l < 32; l++ {
			is := l / 16
			q1 := int(ql[l]&15|(qh[l]&3)<<4) - 32
			q2 := int(ql[l+32]&15|((qh[l]>>2)&3)<<4) - 32
			q3 := int(ql[l]>>4|((qh[l]>>4)&3)<<4) - 32
			q4 := int(ql[l+32]>>4|((qh[l]>>6)&3)<<4) - 32
			y[o+l] = float32(d*float32(int8(sc[is]))) * float32(q1)
			y[o+l+32] = float32(d*float32(int8(sc[is+2]))) * float32(q2)
			y[o+l+64] = float32(d*float32(int8(sc[is+4]))) * float32(q3)
			y[o+l+96] = float32(d*float32(int8(sc[is+6]))) * float32(q4)
		}
		o += 128
		ql, qh, sc = ql[64:], qh[32:], sc[8:]
	}
}

// Q4KAffine rewrites n Q4_K values as MLX affine 4-bit quantization with
// groups of 32: packed holds 8 four-bit values per uint32 (value k of a
// word in bits 4k..4k+3), and value i is scales[i/32] * q_i + biases[i/32].
// A Q4_K sub-block of 32 is exactly such a group: ggml computes
// (d*sc)*q - dmin*m in float32, and scales = d*sc, biases = -(dmin*m) are
// those same float32 numbers, so scale*q + bias rounds to the same value.
func Q4KAffine(raw []byte, n int) (packed []uint32, scales, biases []float32, err error) {
	if n < 0 || n%256 != 0 || len(raw) != n/256*144 {
		return nil, nil, nil, fmt.Errorf("Q4_K: %d bytes for %d values", len(raw), n)
	}
	packed = make([]uint32, n/8)
	scales = make([]float32, n/32)
	biases = make([]float32, n/32)
	for b := 0; b < n/256; b++ {
		x := raw[b*144 : (b+1)*144]
		d, dmin := half(x), half(x[2:])
		sc, q := x[4:16], x[16:144]
		for j := 0; j < 4; j++ { // 64 values: 32 low nibbles, then 32 high
			for h := 0; h < 2; h++ {
				s, m := scaleMinK4(2*j+h, sc)
				g := b*8 + 2*j + h
				scales[g] = d * float32(s)
				biases[g] = -(dmin * float32(m))
				for w := 0; w < 4; w++ { // 4 words of 8 values
					var word uint32
					for k := 0; k < 8; k++ {
						v := q[32*j+8*w+k]
						if h == 1 {
							v >>= 4
						}
						word |= uint32(v&15) << (4 * uint(k))
					}
					packed[g*4+w] = word
				}
			}
		}
	}
	return packed, scales, biases, nil
}

// iq4Values are the 16 non-uniform levels of IQ4_NL and IQ4_XS
// (ggml-common.h's kvalues_iq4nl).
var iq4Values = [16]float32{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

// IQ4_NL: f16 d, u8 qs[16]; w = d * level[q].
func dequantIQ4NL(x []byte, y []float32) {
	d := half(x)
	qs := x[2:18]
	for j := 0; j < 16; j++ {
		y[j] = d * iq4Values[qs[j]&15]
		y[j+16] = d * iq4Values[qs[j]>>4]
	}
}

// IQ4_XS: f16 d, u16 scales_h, u8 scales_l[4], u8 qs[128]; 8 sub-blocks of
// 32 with six-bit scales: w = d * (scale - 32) * level[q].
func dequantIQ4XS(x []byte, y []float32) {
	d := half(x)
	sh := binary.LittleEndian.Uint16(x[2:])
	sl, qs := x[4:8], x[8:136]
	for ib := 0; ib < 8; ib++ {
		ls := int(sl[ib/2]>>(4*uint(ib%2)))&15 | int(sh>>(2*uint(ib))&3)<<4
		dl := d * float32(ls-32)
		q := qs[16*ib : 16*ib+16]
		for j := 0; j < 16; j++ {
			y[32*ib+j] = dl * iq4Values[q[j]&15]
			y[32*ib+j+16] = dl * iq4Values[q[j]>>4]
		}
	}
}
