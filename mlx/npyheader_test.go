package mlx_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlx-genkit/genkit/mlx"
)

// npyFile is a version-1 .npy file with header dict hdr and data.
func npyFile(hdr string, data []byte) []byte {
	for (10+len(hdr)+1)%64 != 0 {
		hdr += " "
	}
	hdr += "\n"
	out := append([]byte("\x93NUMPY\x01\x00"), byte(len(hdr)), byte(len(hdr)>>8))
	return append(append(out, hdr...), data...)
}

// TestLoadNpyChecksTheHeader: a .npy whose shape needs more data than the
// file holds (which MLX would allocate: 4 TiB here), a header past the end,
// no dtype or a bad dimension is refused at once; so is a header MLX would
// read differently from the dict it holds (MLX takes the dtype and order
// from fixed offsets, the shape from the last parentheses, and stops at a
// NUL): FuzzVectorNpy's crasher said 'shape': () to this check and
// [400000000, 0] to MLX. Files laid out as numpy and MLX write them load.
func TestLoadNpyChecksTheHeader(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]struct {
		data []byte
		want string
	}{
		"good":         {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", make([]byte, 8)), ""},
		"good 2-D":     {npyFile("{'descr': '<f2', 'fortran_order': True, 'shape': (2, 3), }", make([]byte, 12)), ""},
		"good MLX":     {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, )}", make([]byte, 24)), ""},
		"good scalar":  {npyFile("{'descr': '|u1', 'fortran_order': False, 'shape': (), }", make([]byte, 1)), ""},
		"lying":        {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }", make([]byte, 8)), "larger than 2147483647"},
		"needs more":   {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1024), }", make([]byte, 8)), "needs 4294967296 bytes"},
		"overflow":     {npyFile("{'descr': '<f8', 'fortran_order': False, 'shape': (2147483647, 2147483647, 2147483647), }", nil), "overflows"},
		"no descr":     {npyFile("{'pescr': '<f4', 'fortran_order': False, 'shape': (2,), }", make([]byte, 8)), "descr"},
		"bad dim":      {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", make([]byte, 8)), "not a tuple of dimensions"},
		"truncated":    {[]byte("\x93NUMPY\x01\x00\xff\x7f{'descr'"), "runs past the end"},
		"magic":        {[]byte("NUMPY"), "bad magic"},
		"version 3":    {append([]byte("\x93NUMPY\x03\x00"), npyFile("", nil)[8:]...), "version 3.0"},
		"second shape": {npyFile("{'descr': '<f2', 'fortran_order': False, 'shape': (), }(400000000A0, 0)", make([]byte, 2)), "after the shape"},
		"crasher":      {[]byte("\x93NUMPY\x010X\x000'descr': '<f2'000000000000000000000+0000'shape': ()000(00400000000A000000000000000000000000000000000000000000000777777000"), "not laid out"},
		"key order":    {npyFile("{'fortran_order': False, 'descr': '<f4', 'shape': (2,), }", make([]byte, 8)), "not laid out"},
		"no space":     {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (2,4), }", make([]byte, 32)), "not a tuple"},
		"NUL":          {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\x00(9999999, 9999)", make([]byte, 8)), "NUL byte at header offset 57"},
		"dtype":        {npyFile("{'descr': '<f3', 'fortran_order': False, 'shape': (2,), }", make([]byte, 8)), `dtype "<f3"`},
		"order":        {npyFile("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", make([]byte, 8)), "True or False"},
	}
	for name, c := range cases {
		p := filepath.Join(dir, name+".npy")
		if err := os.WriteFile(p, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var err error
		on(t, func(s *mlx.Scope) error {
			a, lerr := mlx.LoadNpy(p)
			if lerr == nil {
				a.Free()
			}
			err = lerr
			return nil
		})
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want an error with %q", name, err, c.want)
		case time.Since(start) > time.Second:
			t.Errorf("%s took %v", name, time.Since(start))
		}
	}
}
