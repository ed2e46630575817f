package steering_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlx-genkit/genkit/mlx"
	"github.com/mlx-genkit/genkit/steering"
)

// vectorSeed saves a small two-layer set (one layer for .npy) in the format
// of ext and returns the file's bytes.
func vectorSeed(f *testing.F, ext string) []byte {
	f.Helper()
	vs := &steering.VectorSet{ModelHint: "llama", Vectors: map[int][]float32{3: {1, -2, 0.5, 4}, 5: {0, 1, 0, -1}}}
	if ext == ".npy" {
		delete(vs.Vectors, 5)
	}
	p := filepath.Join(f.TempDir(), "seed"+ext)
	if err := vs.Save(p); err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		f.Fatal(err)
	}
	return data
}

// fuzzVectors loads data as a vector file of type ext on the MLX thread:
// it is refused with an error, or every vector is non-empty, finite, at a
// non-negative layer and as long as the others.
func fuzzVectors(f *testing.F, ext string, nasty ...[]byte) {
	seed := vectorSeed(f, ext)
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add(seed[:len(seed)-3])
	for _, n := range nasty {
		f.Add(n)
	}
	// The seed with every float32 1.0 (bits 0x3f800000) turned into NaN.
	f.Add(bytes.ReplaceAll(seed, []byte{0, 0, 0x80, 0x3f}, binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(math.NaN())))))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "v"+ext)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		before := mlx.LiveArrays()
		vs, err := steering.LoadVectors(p, 7)
		if after := mlx.LiveArrays(); after != before {
			t.Fatalf("loading leaked %d MLX arrays (err %v)", after-before, err)
		}
		if err != nil {
			return
		}
		hidden := -1
		for l, v := range vs.Vectors {
			if l < 0 || len(v) == 0 || hidden >= 0 && len(v) != hidden {
				t.Fatalf("accepted layer %d with %d values (others %d)", l, len(v), hidden)
			}
			hidden = len(v)
			for i, x := range v {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					t.Fatalf("accepted layer %d value %d = %v", l, i, x)
				}
			}
		}
	})
}

// FuzzVectorGGUF fuzzes .gguf control vectors.
func FuzzVectorGGUF(f *testing.F) {
	fuzzVectors(f, ".gguf", []byte("GGUF\x03\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\x7f\x01\x00\x00\x00\x00\x00\x00\x00"))
}

// FuzzVectorSafetensors fuzzes .safetensors vector files.
func FuzzVectorSafetensors(f *testing.F) {
	lying := []byte(`{"direction.1":{"dtype":"F32","shape":[1099511627776],"data_offsets":[0,4398046511104]}}`)
	hdr := binary.LittleEndian.AppendUint64(nil, uint64(len(lying)))
	fuzzVectors(f, ".safetensors", append(hdr, lying...), binary.LittleEndian.AppendUint64(nil, 1<<62))
}

// FuzzVectorNpy fuzzes .npy vector files.
func FuzzVectorNpy(f *testing.F) {
	h := "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }"
	fuzzVectors(f, ".npy", append([]byte("\x93NUMPY\x01\x00"+string(rune(len(h)))+"\x00"), h...),
		[]byte("\x93NUMPY\x01\x00\xff\xff{'descr': '|O'"))
}
