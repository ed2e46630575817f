package mlx_test

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlx-genkit/genkit/mlx"
)

// safetensorsFile is a .safetensors file: the 8-byte header length, the
// JSON header, then the data.
func safetensorsFile(header string, data []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(out, header...), data...)
}

// FuzzLoadSafetensors fuzzes the safetensors reader every model directory
// and vector file goes through: the header length, the JSON header (dtype,
// shape, data_offsets) and the data. Any file is refused with an error, or
// every tensor it yields can be evaluated and freed. Runs on the MLX
// thread; files over 64 KiB are skipped to keep execs cheap.
func FuzzLoadSafetensors(f *testing.F) {
	f.Add(safetensorsFile(`{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[1,2],"data_offsets":[8,12]}}`, make([]byte, 12)))
	f.Add(safetensorsFile(`{"a":{"dtype":"F32","shape":[1099511627776],"data_offsets":[0,4398046511104]}}`, make([]byte, 8)))
	f.Add(safetensorsFile(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[8,0]}}`, make([]byte, 8)))
	f.Add(safetensorsFile(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(safetensorsFile(`{"a":{"dtype":"Q9","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(safetensorsFile("{\"\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", make([]byte, 4)))
	f.Add(safetensorsFile(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`, nil))
	f.Add(binary.LittleEndian.AppendUint64(nil, 1<<62))
	f.Add([]byte{1, 2, 3})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			t.Skip()
		}
		p := filepath.Join(dir, "f.safetensors")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		err := mlx.Do(context.Background(), func() error {
			before := mlx.LiveArrays()
			arrays, _, err := mlx.LoadSafetensors(p)
			if err != nil {
				if mlx.LiveArrays() != before {
					t.Errorf("a refused file left %d arrays", mlx.LiveArrays()-before)
				}
				return nil
			}
			for name, a := range arrays {
				if a.Size() > 1<<20 {
					t.Errorf("tensor %s of %d elements accepted from a %d-byte file", name, a.Size(), len(data))
					continue
				}
				_ = mlx.Eval(a) // reading the data may fail; it must not crash
			}
			for _, a := range arrays {
				a.Free()
			}
			if mlx.LiveArrays() != before {
				t.Errorf("freeing the tensors left %d arrays", mlx.LiveArrays()-before)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
