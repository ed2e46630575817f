package gguf

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// typesDir holds tiny GGUFs quantized by llama.cpp's llama-quantize and the
// values ggml's reference dequantize_row_* functions give for every tensor
// (scripts/reference/make_kquant_refs.py).
const typesDir = "../testdata/gguf_types"

type tensorRef struct {
	Type        string
	Dims        []int
	Count       int
	SHA256      string `json:"sha256"`
	Sum         float64
	SampleIndex []int `json:"sample_index"`
	Sample      []float64
}

type typesRefs struct {
	Files map[string]struct {
		Tensors map[string]tensorRef
	}
}

func loadTypesRefs(t *testing.T) typesRefs {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(typesDir, "ggml_dequant.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r typesRefs
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Files) == 0 {
		t.Fatal("no reference files")
	}
	return r
}

func hashF32(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestDequantizeMatchesGGML: every tensor of llama.cpp-quantized Q2_K, Q3_K,
// Q4_K, Q5_K, Q6_K, Q5_0, Q5_1, Q4_0 and IQ4_XS files dequantizes bit for bit to
// ggml's reference values (SHA-256 of the float32 bytes, and 64 sampled
// values compared exactly for a readable failure).
func TestDequantizeMatchesGGML(t *testing.T) {
	refs := loadTypesRefs(t)
	names := make([]string, 0, len(refs.Files))
	for f := range refs.Files {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		t.Run(f, func(t *testing.T) {
			path := filepath.Join(typesDir, f)
			h, err := ReadHeader(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.CheckTypes(); err != nil {
				t.Fatal(err)
			}
			want := refs.Files[f].Tensors
			if len(h.Tensors) != len(want) {
				t.Fatalf("%d tensors, reference has %d", len(h.Tensors), len(want))
			}
			for _, ti := range h.Tensors {
				ref, ok := want[ti.Name]
				if !ok {
					t.Fatalf("tensor %s not in the reference", ti.Name)
				}
				if TypeNames[ti.Type] != ref.Type {
					t.Fatalf("%s: type %s, reference %s", ti.Name, TypeNames[ti.Type], ref.Type)
				}
				vals, err := h.ReadTensor(path, ti)
				if err != nil {
					t.Fatal(err)
				}
				if len(vals) != ref.Count {
					t.Fatalf("%s: %d values, want %d", ti.Name, len(vals), ref.Count)
				}
				for i, ix := range ref.SampleIndex {
					if float64(vals[ix]) != ref.Sample[i] {
						t.Errorf("%s (%s) value %d = %g, ggml %g", ti.Name, ref.Type, ix, vals[ix], ref.Sample[i])
						break
					}
				}
				if got := hashF32(vals); got != ref.SHA256 {
					t.Errorf("%s (%s): values differ from ggml's (sha256 %s, want %s)", ti.Name, ref.Type, got[:12], ref.SHA256[:12])
				}
			}
		})
	}
}

// oneTensor is a GGUF file with one tensor "blk.0.attn_q.weight" of ggml
// type typ and dims, its data zero.
func oneTensor(t *testing.T, typ uint32, dims ...uint64) string {
	t.Helper()
	var b []byte
	le32 := func(v uint32) { b = binary.LittleEndian.AppendUint32(b, v) }
	le64 := func(v uint64) { b = binary.LittleEndian.AppendUint64(b, v) }
	b = append(b, "GGUF"...)
	le32(3)
	le64(1)
	le64(0)
	name := "blk.0.attn_q.weight"
	le64(uint64(len(name)))
	b = append(b, name...)
	le32(uint32(len(dims)))
	for _, d := range dims {
		le64(d)
	}
	le32(typ)
	le64(0)
	for len(b)%32 != 0 {
		b = append(b, 0)
	}
	ti := TensorInfo{Name: name, Dims: dims, Type: typ}
	n, err := ti.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, make([]byte, n)...)
	p := filepath.Join(t.TempDir(), "one.gguf")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUnsupportedTypesRefusedByName: a tensor of an IQ format, Q8_K, Q8_1,
// TQ, MXFP4, an integer type or F64 is refused naming the tensor, the type
// and the supported list; every supported type with the same shape passes
// the check and dequantizes.
func TestUnsupportedTypesRefusedByName(t *testing.T) {
	for typ, name := range TypeNames {
		path := oneTensor(t, typ, 256, 2)
		h, err := ReadHeader(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		err = h.CheckTypes()
		if supported[typ] {
			if err != nil {
				t.Errorf("%s refused: %v", name, err)
			}
			if _, err := h.ReadTensor(path, h.Tensors[0]); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s accepted", name)
			continue
		}
		for _, want := range []string{"blk.0.attn_q.weight", name + " (", "supported: F32"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not name %q", name, err, want)
			}
		}
	}
	// A type number ggml does not know.
	b := TensorInfo{Name: "x", Dims: []uint64{32}, Type: 99}
	if _, err := b.Bytes(); err == nil || !strings.Contains(err.Error(), "unknown ggml type 99") {
		t.Errorf("type 99: %v", err)
	}
}

// TestDequantizeRandomBlocksMatchGGML: 16 blocks of random bytes (random
// finite float16 scales) of every supported quantized type, and 512 random
// F16 and BF16 values, dequantize bit for bit to what ggml's own functions
// gave (scripts/reference/make_kquant_refs.py).
func TestDequantizeRandomBlocksMatchGGML(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(typesDir, "ggml_dequant.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		RandomBlocks map[string]struct {
			Raw    []byte
			Count  int
			SHA256 string `json:"sha256"`
			First  []float64
		} `json:"random_blocks"`
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	byName := map[string]uint32{}
	for typ, n := range TypeNames {
		byName[n] = typ
	}
	seen := 0
	for name, r := range ref.RandomBlocks {
		typ, ok := byName[name]
		if !ok {
			t.Fatalf("unknown type %s", name)
		}
		vals, err := Dequantize(typ, r.Raw, r.Count)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i, want := range r.First {
			if float64(vals[i]) != want {
				t.Errorf("%s value %d = %g, ggml %g", name, i, vals[i], want)
			}
		}
		if hashF32(vals) != r.SHA256 {
			t.Errorf("%s: values differ from ggml's", name)
		}
		seen++
	}
	if seen != len(supported)-1 { // every supported type but F32
		t.Errorf("%d types covered, want %d", seen, len(supported)-1)
	}
}

// TestHalfEdgeValues: float16 subnormals, signed zero, the largest finite
// half and infinity convert exactly (IEEE 754 binary16 facts).
func TestHalfEdgeValues(t *testing.T) {
	for bits, want := range map[uint16]float64{
		0x0001: math.Ldexp(1, -24), 0x03ff: math.Ldexp(1023, -24), 0x0400: math.Ldexp(1, -14),
		0x8000: math.Copysign(0, -1), 0x7bff: 65504, 0xfc00: math.Inf(-1), 0x3c00: 1, 0xc000: -2,
	} {
		got := half([]byte{byte(bits), byte(bits >> 8)})
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Errorf("half(%#04x) = %g, want %g", bits, got, want)
		}
	}
}

// TestQ4KAffineIsExact: the affine form of every Q4_K tensor of the
// llama-quantize'd file and of the random blocks, expanded as
// scale*q + bias, equals Dequantize's values bit for bit (themselves equal
// to ggml's).
func TestQ4KAffineIsExact(t *testing.T) {
	path := filepath.Join(typesDir, "tiny_q4_k.gguf")
	h, err := ReadHeader(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, ti := range h.Tensors {
		if ti.Type != TypeQ4_K {
			continue
		}
		nb, _ := ti.Bytes()
		raw := f[h.DataStart+int64(ti.Offset):][:nb]
		want, err := Dequantize(TypeQ4_K, raw, int(ti.Elements()))
		if err != nil {
			t.Fatal(err)
		}
		packed, scales, biases, err := Q4KAffine(raw, int(ti.Elements()))
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			q := float32(packed[i/8] >> (4 * uint(i%8)) & 15)
			got := float32(scales[i/32]*q) + biases[i/32]
			if math.Float32bits(got) != math.Float32bits(want[i]) && !(got == 0 && want[i] == 0) {
				t.Fatalf("%s value %d: affine %g, Q4_K %g", ti.Name, i, got, want[i])
			}
		}
		checked++
	}
	if checked < 8 {
		t.Fatalf("%d Q4_K tensors checked", checked)
	}
	if _, _, _, err := Q4KAffine(make([]byte, 143), 256); err == nil {
		t.Fatal("a short Q4_K block was accepted")
	}
}
