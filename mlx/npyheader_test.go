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
// no dtype or a bad dimension is refused at once; a good file loads.
func TestLoadNpyChecksTheHeader(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]struct {
		data []byte
		want string
	}{
		"good":      {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", make([]byte, 8)), ""},
		"lying":     {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }", make([]byte, 8)), "needs 4398046511104 bytes"},
		"overflow":  {npyFile("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", nil), "overflows"},
		"no descr":  {npyFile("{'pescr': '<f4', 'fortran_order': False, 'shape': (2,), }", make([]byte, 8)), "descr"},
		"bad dim":   {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", make([]byte, 8)), "not a dimension"},
		"truncated": {[]byte("\x93NUMPY\x01\x00\xff\x7f{'descr'"), "runs past the end"},
		"magic":     {[]byte("NUMPY"), "bad magic"},
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
