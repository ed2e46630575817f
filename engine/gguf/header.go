// Package gguf reads the structure of GGUF files (llama.cpp's model format)
// without loading tensor data, so damaged files are refused with a clear
// error before anything else touches them.
package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// TensorInfo describes one tensor of a GGUF file.
type TensorInfo struct {
	Name   string
	Dims   []uint64 // dims[0] varies fastest
	Type   uint32   // ggml type
	Offset uint64   // relative to the data section
}

// Header is a GGUF file's metadata keys and tensor table.
type Header struct {
	Version uint32
	Keys    []string
	// Meta holds every metadata entry's type and, for a scalar or a string,
	// its value (arrays are recorded by type only).
	Meta      map[string]Value
	Tensors   []TensorInfo
	DataStart int64
	FileSize  int64
	Alignment uint64
}

// ggml tensor types genkit loads.
const (
	TypeF32  uint32 = 0
	TypeF16  uint32 = 1
	TypeQ4_0 uint32 = 2
	TypeQ4_1 uint32 = 3
	TypeQ5_0 uint32 = 6
	TypeQ5_1 uint32 = 7
	TypeQ8_0 uint32 = 8
	TypeQ2_K uint32 = 10
	TypeQ3_K uint32 = 11
	TypeQ4_K uint32 = 12
	TypeQ5_K uint32 = 13
	TypeQ6_K uint32 = 14
	TypeBF16 uint32 = 30
	// IQ4_NL and IQ4_XS: 4-bit indices into a fixed non-uniform table.
	TypeIQ4_NL uint32 = 20
	TypeIQ4_XS uint32 = 23
)

// ggml element types and their block sizes (elements, bytes), as ggml's
// type traits give them (ggml 0.25), supported or not, so any file's
// structure can be checked and an unsupported type refused by name.
var blockSizes = map[uint32][2]uint64{
	0: {1, 4}, 1: {1, 2}, 2: {32, 18}, 3: {32, 20}, 6: {32, 22}, 7: {32, 24}, 8: {32, 34},
	9: {32, 36}, 10: {256, 84}, 11: {256, 110}, 12: {256, 144}, 13: {256, 176}, 14: {256, 210},
	15: {256, 292}, 16: {256, 66}, 17: {256, 74}, 18: {256, 98}, 19: {256, 50}, 20: {32, 18},
	21: {256, 110}, 22: {256, 82}, 23: {256, 136}, 24: {1, 1}, 25: {1, 2}, 26: {1, 4}, 27: {1, 8},
	28: {1, 8}, 29: {256, 56}, 30: {1, 2}, 34: {256, 54}, 35: {256, 66}, 39: {32, 17},
	40: {64, 36}, 41: {128, 18}, 42: {64, 18},
}

// TypeNames names the ggml types (ggml_type_name, upper-cased).
var TypeNames = map[uint32]string{0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1",
	8: "Q8_0", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K",
	16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
	23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16",
	34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4", 40: "NVFP4", 41: "Q1_0", 42: "Q2_0"}

// supported are the ggml types genkit loads with exactly ggml's values.
var supported = map[uint32]bool{TypeF32: true, TypeF16: true, TypeBF16: true, TypeQ4_0: true,
	TypeQ4_1: true, TypeQ5_0: true, TypeQ5_1: true, TypeQ8_0: true, TypeQ2_K: true, TypeQ3_K: true,
	TypeQ4_K: true, TypeQ5_K: true, TypeQ6_K: true, TypeIQ4_NL: true, TypeIQ4_XS: true}

// SupportedTypes lists the ggml types genkit loads, by name.
const SupportedTypes = "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS"

// MLXNative says whether MLX's own GGUF reader loads type t with ggml's
// exact values (F32 and F16 copied, Q4_0/Q4_1/Q8_0 as affine-quantized
// weights); every other supported type is dequantized by Dequantize.
func MLXNative(t uint32) bool {
	return t == TypeF32 || t == TypeF16 || t == TypeQ4_0 || t == TypeQ4_1 || t == TypeQ8_0
}

func typeName(t uint32) string {
	if n, ok := TypeNames[t]; ok {
		return fmt.Sprintf("%s (%d)", n, t)
	}
	return fmt.Sprintf("%d", t)
}

// CheckTypes refuses, naming the tensor and its type, a file holding a
// tensor of a type genkit does not load exactly (the IQ formats but IQ4_NL
// and IQ4_XS, Q8_K, Q8_1, TQ*, MXFP4, NVFP4, Q1_0, Q2_0, integer and F64
// tensors).
func (h *Header) CheckTypes() error {
	for _, t := range h.Tensors {
		if !supported[t.Type] {
			return fmt.Errorf("tensor %s has ggml type %s, which genkit cannot load (supported: %s)", t.Name, typeName(t.Type), SupportedTypes)
		}
	}
	return nil
}

type reader struct {
	r   *bufio.Reader
	pos int64
}

func (r *reader) read(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r.r, b); err != nil {
		return nil, err
	}
	r.pos += int64(n)
	return b, nil
}

func (r *reader) u32() (uint32, error) {
	b, err := r.read(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (r *reader) u64() (uint64, error) {
	b, err := r.read(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (r *reader) str(limit int64) (string, error) {
	n, err := r.u64()
	if err != nil {
		return "", err
	}
	if int64(n) > limit || n > 1<<30 {
		return "", fmt.Errorf("string length %d runs past the end of the file", n)
	}
	b, err := r.read(int(n))
	return string(b), err
}

// GGUF metadata value types.
const (
	TypeUint8   uint32 = 0
	TypeInt8    uint32 = 1
	TypeUint16  uint32 = 2
	TypeInt16   uint32 = 3
	TypeUint32  uint32 = 4
	TypeInt32   uint32 = 5
	TypeFloat32 uint32 = 6
	TypeBool    uint32 = 7
	TypeString  uint32 = 8
	TypeArray   uint32 = 9
	TypeUint64  uint32 = 10
	TypeInt64   uint32 = 11
	TypeFloat64 uint32 = 12
)

// Value is one metadata entry: its GGUF type, the text of a string, the
// raw little-endian bits of a scalar (zero-extended), and for an array its
// element type and elements (Strings for strings, Numbers for numbers and
// bools; nested arrays are skipped).
type Value struct {
	Type     uint32
	Str      string
	Bits     uint64
	ElemType uint32
	Strings  []string
	Numbers  []float64
}

// Float reads a numeric value (integer, float or bool) as float64.
func (v Value) Float() (float64, bool) {
	return scalarFloat(v.Type, v.Bits)
}

func scalarFloat(t uint32, bits uint64) (float64, bool) {
	switch t {
	case TypeFloat32:
		return float64(math.Float32frombits(uint32(bits))), true
	case TypeFloat64:
		return math.Float64frombits(bits), true
	}
	i, ok := Value{Type: t, Bits: bits}.Int()
	if t == TypeUint64 {
		return float64(bits), ok
	}
	return float64(i), ok
}

// Int reads an integer-typed value (any width, signed or not).
func (v Value) Int() (int64, bool) {
	switch v.Type {
	case TypeUint8, TypeUint16, TypeUint32, TypeUint64, TypeBool:
		return int64(v.Bits), true
	case TypeInt8:
		return int64(int8(v.Bits)), true
	case TypeInt16:
		return int64(int16(v.Bits)), true
	case TypeInt32:
		return int64(int32(v.Bits)), true
	case TypeInt64:
		return int64(v.Bits), true
	}
	return 0, false
}

var scalarSizes = map[uint32]int{0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

// value reads one metadata value: a scalar's bits, a string's text, or
// past an array (recording a top-level array's elements in arr).
func (r *reader) value(t uint32, size int64, depth int, arr *Value) (uint64, string, error) {
	if depth > 4 {
		return 0, "", errors.New("metadata arrays nested too deeply")
	}
	if n, ok := scalarSizes[t]; ok {
		b, err := r.read(n)
		if err != nil {
			return 0, "", err
		}
		switch n {
		case 4:
			return uint64(binary.LittleEndian.Uint32(b)), "", nil
		case 8:
			return binary.LittleEndian.Uint64(b), "", nil
		case 2:
			return uint64(binary.LittleEndian.Uint16(b)), "", nil
		}
		return uint64(b[0]), "", nil
	}
	switch t {
	case TypeString:
		s, err := r.str(size - r.pos)
		return 0, s, err
	case TypeArray:
		et, err := r.u32()
		if err != nil {
			return 0, "", err
		}
		n, err := r.u64()
		if err != nil {
			return 0, "", err
		}
		if int64(n) > size-r.pos {
			return 0, "", fmt.Errorf("array of %d elements runs past the end of the file", n)
		}
		if arr != nil {
			arr.ElemType = et
		}
		if sz, ok := scalarSizes[et]; ok && arr == nil {
			_, err = r.r.Discard(int(n) * sz)
			r.pos += int64(n) * int64(sz)
			return 0, "", err
		}
		for i := uint64(0); i < n; i++ {
			bits, str, err := r.value(et, size, depth+1, nil)
			if err != nil {
				return 0, "", err
			}
			switch _, scalar := scalarSizes[et]; {
			case arr == nil:
			case et == TypeString:
				arr.Strings = append(arr.Strings, str)
			case scalar:
				f, _ := scalarFloat(et, bits)
				arr.Numbers = append(arr.Numbers, f)
			}
		}
		return 0, "", nil
	}
	return 0, "", fmt.Errorf("unknown metadata value type %d", t)
}

// ReadHeader parses path's header and tensor table and checks that every
// tensor's data lies inside the file.
func ReadHeader(path string) (*Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	h, err := parse(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid GGUF file: %w", path, err)
	}
	return h, nil
}

func parse(f io.Reader, size int64) (*Header, error) {
	r := &reader{r: bufio.NewReaderSize(f, 1<<20)}
	magic, err := r.read(4)
	if err != nil || string(magic) != "GGUF" {
		return nil, errors.New("bad magic (want GGUF)")
	}
	h := &Header{FileSize: size, Alignment: 32, Meta: map[string]Value{}}
	if h.Version, err = r.u32(); err != nil {
		return nil, fmt.Errorf("truncated header: %w", err)
	}
	if h.Version < 2 || h.Version > 3 {
		return nil, fmt.Errorf("unsupported version %d", h.Version)
	}
	nt, err := r.u64()
	if err != nil {
		return nil, fmt.Errorf("truncated header: %w", err)
	}
	nkv, err := r.u64()
	if err != nil {
		return nil, fmt.Errorf("truncated header: %w", err)
	}
	if nt > 1<<24 || nkv > 1<<24 {
		return nil, fmt.Errorf("implausible counts: %d tensors, %d metadata keys", nt, nkv)
	}
	for i := uint64(0); i < nkv; i++ {
		key, err := r.str(size - r.pos)
		if err != nil {
			return nil, fmt.Errorf("metadata entry %d: %w", i, err)
		}
		t, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("metadata %s: %w", key, err)
		}
		val := Value{Type: t}
		v, str, err := r.value(t, size, 0, &val)
		if err != nil {
			return nil, fmt.Errorf("metadata %s: %w", key, err)
		}
		val.Str, val.Bits = str, v
		h.Meta[key] = val
		if key == "general.alignment" {
			if v == 0 || v&(v-1) != 0 {
				return nil, fmt.Errorf("general.alignment %d is not a power of two", v)
			}
			h.Alignment = v
		}
		h.Keys = append(h.Keys, key)
	}
	for i := uint64(0); i < nt; i++ {
		var ti TensorInfo
		if ti.Name, err = r.str(size - r.pos); err != nil {
			return nil, fmt.Errorf("tensor %d: %w", i, err)
		}
		nd, err := r.u32()
		if err != nil || nd == 0 || nd > 4 {
			return nil, fmt.Errorf("tensor %s: bad dimension count %d", ti.Name, nd)
		}
		for d := uint32(0); d < nd; d++ {
			v, err := r.u64()
			if err != nil {
				return nil, fmt.Errorf("tensor %s: %w", ti.Name, err)
			}
			ti.Dims = append(ti.Dims, v)
		}
		if ti.Type, err = r.u32(); err != nil {
			return nil, fmt.Errorf("tensor %s: %w", ti.Name, err)
		}
		if ti.Offset, err = r.u64(); err != nil {
			return nil, fmt.Errorf("tensor %s: %w", ti.Name, err)
		}
		h.Tensors = append(h.Tensors, ti)
	}
	h.DataStart = int64((uint64(r.pos) + h.Alignment - 1) / h.Alignment * h.Alignment)
	for _, ti := range h.Tensors {
		n, err := ti.Bytes()
		if err != nil {
			return nil, err
		}
		// Each term is checked alone first, so the sum cannot wrap.
		end := uint64(h.DataStart) + ti.Offset + n
		if n > uint64(size) || ti.Offset > uint64(size) || end > uint64(size) {
			return nil, fmt.Errorf("tensor %s: data ends at byte %d but the file has %d (truncated?)", ti.Name, end, size)
		}
	}
	return h, nil
}

// Elements is the number of values.
func (t TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// Bytes is the size of the tensor's data.
func (t TensorInfo) Bytes() (uint64, error) {
	bs, ok := blockSizes[t.Type]
	if !ok {
		return 0, fmt.Errorf("tensor %s: unknown ggml type %d (supported: %s)", t.Name, t.Type, SupportedTypes)
	}
	if len(t.Dims) == 0 || t.Dims[0]%bs[0] != 0 {
		return 0, fmt.Errorf("tensor %s: first dimension %v is not a multiple of the %s block (%d)", t.Name, t.Dims, TypeNames[t.Type], bs[0])
	}
	// The element count and the byte size must not overflow (a wrapped
	// product would pass the end-of-file check with a tiny size).
	n := uint64(1)
	for _, d := range t.Dims {
		if d != 0 && n > math.MaxUint64/d {
			return 0, fmt.Errorf("tensor %s: dimensions %v overflow", t.Name, t.Dims)
		}
		n *= d
	}
	if blocks := n / bs[0]; blocks > math.MaxUint64/bs[1] {
		return 0, fmt.Errorf("tensor %s: dimensions %v overflow", t.Name, t.Dims)
	}
	return n / bs[0] * bs[1], nil
}

// ReadRaw reads the stored bytes of tensor t of the file path whose header
// is h.
func (h *Header) ReadRaw(path string, t TensorInfo) ([]byte, error) {
	n, err := t.Bytes()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw := make([]byte, n)
	if _, err := f.ReadAt(raw, h.DataStart+int64(t.Offset)); err != nil {
		return nil, fmt.Errorf("tensor %s: %w", t.Name, err)
	}
	return raw, nil
}

// ReadTensor reads tensor t of the file path whose header is h and returns
// its values as float32, dequantized exactly as ggml's reference code does
// (see Dequantize).
func (h *Header) ReadTensor(path string, t TensorInfo) ([]float32, error) {
	raw, err := h.ReadRaw(path, t)
	if err != nil {
		return nil, err
	}
	vals, err := Dequantize(t.Type, raw, int(t.Elements()))
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", t.Name, err)
	}
	return vals, nil
}

// ReadF32 reads the values of an F32 tensor of the file path whose header
// is h.
func (h *Header) ReadF32(path string, t TensorInfo) ([]float32, error) {
	if t.Type != 0 {
		return nil, fmt.Errorf("tensor %s is %s, not F32", t.Name, TypeNames[t.Type])
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n := t.Elements()
	buf := make([]byte, 4*n)
	if _, err := f.ReadAt(buf, h.DataStart+int64(t.Offset)); err != nil {
		return nil, fmt.Errorf("tensor %s: %w", t.Name, err)
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
	}
	return out, nil
}
