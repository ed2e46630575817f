package gguf

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// ggufBytes builds a small GGUF v3 file: one string key, one F32 tensor of
// n values, padded to the default alignment.
func ggufBytes(n uint64) []byte {
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	str := func(s string) { le(uint64(len(s))); b.WriteString(s) }
	b.WriteString("GGUF")
	le(uint32(3))
	le(uint64(1)) // tensors
	le(uint64(1)) // metadata
	str("general.architecture")
	le(TypeString)
	str("controlvector")
	str("direction.1")
	le(uint32(1))
	le(n)
	le(uint32(0)) // F32
	le(uint64(0))
	for b.Len()%32 != 0 {
		b.WriteByte(0)
	}
	b.Write(make([]byte, 4*n))
	return b.Bytes()
}

// FuzzReadHeader: any bytes either fail to parse or give a header whose
// every tensor's data lies inside the file (with no overflow on the way).
func FuzzReadHeader(f *testing.F) {
	good := ggufBytes(4)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("GGUF"))
	huge := append([]byte(nil), good...)
	binary.LittleEndian.PutUint64(huge[8:], 1<<62) // tensor count
	f.Add(huge)
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := parse(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for _, ti := range h.Tensors {
			n, err := ti.Bytes()
			if err != nil {
				t.Fatalf("tensor %s accepted but Bytes fails: %v", ti.Name, err)
			}
			if end := uint64(h.DataStart) + ti.Offset + n; end > uint64(len(data)) || n > uint64(len(data)) {
				t.Fatalf("tensor %s accepted with %d bytes ending at %d in a file of %d", ti.Name, n, end, len(data))
			}
		}
	})
}

// TestOverflowingDimsAreRefused: a tensor whose dimensions multiply past
// 2^64 (wrapping to a small size that would fit the file) is refused; the
// same tensor with sane dimensions is read.
func TestOverflowingDimsAreRefused(t *testing.T) {
	good := ggufBytes(4)
	if _, err := parse(bytes.NewReader(good), int64(len(good))); err != nil {
		t.Fatalf("good file: %v", err)
	}
	ti := TensorInfo{Name: "direction.1", Dims: []uint64{1 << 32, 1 << 32}, Type: 0}
	if _, err := ti.Bytes(); err == nil {
		t.Fatal("dimensions 2^32 x 2^32 accepted")
	}
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("GGUF")
	le(uint32(3))
	le(uint64(1))
	le(uint64(0))
	le(uint64(1))
	b.WriteString("t")
	le(uint32(2))
	le(uint64(1 << 32))
	le(uint64(1 << 32)) // 2^64 elements: wraps to 0 bytes
	le(uint32(0))
	le(uint64(0))
	if _, err := parse(bytes.NewReader(b.Bytes()), int64(b.Len())); err == nil || !strings.Contains(err.Error(), "overflow") {
		t.Fatalf("wrapping dimensions: %v", err)
	}
}

// FuzzDequantize: any bytes of any type either are refused (a type genkit
// does not dequantize, a length that is not whole blocks) or give exactly
// the element count asked for, without panicking.
func FuzzDequantize(f *testing.F) {
	f.Add(uint32(TypeQ4_K), make([]byte, 144), 256)
	f.Add(uint32(TypeQ3_K), make([]byte, 110), 256)
	f.Add(uint32(TypeQ5_0), make([]byte, 44), 64)
	f.Add(uint32(16), make([]byte, 66), 256)
	f.Fuzz(func(t *testing.T, typ uint32, raw []byte, n int) {
		if n > 1<<20 {
			return
		}
		vals, err := Dequantize(typ, raw, n)
		if err != nil {
			return
		}
		if !supported[typ] || len(vals) != n {
			t.Fatalf("type %d: %d values for n = %d (supported %v)", typ, len(vals), n, supported[typ])
		}
	})
}
