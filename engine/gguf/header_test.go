package gguf

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// TestMetaValues: scalar and string metadata are read with their types
// (signed widths sign-extended), arrays by type only, and an F32 tensor's
// values come back; a tensor of another type is refused.
func TestMetaValues(t *testing.T) {
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	str := func(s string) { le(uint64(len(s))); b.WriteString(s) }
	b.WriteString("GGUF")
	le(uint32(3))
	le(uint64(2)) // tensors
	le(uint64(4)) // metadata
	str("a.name")
	le(TypeString)
	str("controlvector")
	str("a.neg")
	le(TypeInt32)
	le(int32(-7))
	str("a.count")
	le(TypeUint32)
	le(uint32(29))
	str("a.list")
	le(TypeArray)
	le(TypeUint8)
	le(uint64(3))
	b.Write([]byte{1, 2, 3})
	str("direction.1")
	le(uint32(1))
	le(uint64(2))
	le(uint32(0)) // F32
	le(uint64(0))
	str("direction.2")
	le(uint32(1))
	le(uint64(2))
	le(uint32(1)) // F16
	le(uint64(32))
	for b.Len()%32 != 0 {
		b.WriteByte(0)
	}
	le(float32(1.5))
	le(float32(-2))
	b.Write(make([]byte, 24))
	le(uint16(0))
	le(uint16(0))
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := ReadHeader(path)
	if err != nil {
		t.Fatal(err)
	}
	if v := h.Meta["a.name"]; v.Type != TypeString || v.Str != "controlvector" {
		t.Errorf("string: %+v", v)
	}
	if n, ok := h.Meta["a.neg"].Int(); !ok || n != -7 {
		t.Errorf("int32: %d %v", n, ok)
	}
	if n, ok := h.Meta["a.count"].Int(); !ok || n != 29 {
		t.Errorf("uint32: %d %v", n, ok)
	}
	if v := h.Meta["a.list"]; v.Type != TypeArray {
		t.Errorf("array: %+v", v)
	}
	if _, ok := h.Meta["a.name"].Int(); ok {
		t.Error("a string read as an integer")
	}
	vals, err := h.ReadF32(path, h.Tensors[0])
	if err != nil || len(vals) != 2 || vals[0] != 1.5 || vals[1] != -2 || math.IsNaN(float64(vals[1])) {
		t.Fatalf("F32 values %v, %v", vals, err)
	}
	if _, err := h.ReadF32(path, h.Tensors[1]); err == nil {
		t.Fatal("an F16 tensor was read as F32")
	}
}
