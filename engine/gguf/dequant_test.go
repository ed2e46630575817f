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
// Q4_K, Q5_K, Q6_K, Q5_0, Q5_1 and Q4_0 files dequantizes bit for bit to
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
