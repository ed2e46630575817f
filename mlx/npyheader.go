package mlx

import (
	le "encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// npy header fields, as numpy writes them: {'descr': '<f4',
// 'fortran_order': False, 'shape': (3, 4), }.
var (
	npyDescr = regexp.MustCompile(`'descr'\s*:\s*'([<>|=]?)([a-zA-Z])(\d+)'`)
	npyShape = regexp.MustCompile(`'shape'\s*:\s*\(([^)]*)\)`)
)

// checkNpy reads a .npy file's header and checks, before MLX reads the
// file (it trusts the header and allocates what the shape says), that the
// header is complete, names a dtype and a shape, and that the shape's data
// fits in the file.
func checkNpy(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	var pre [10]byte
	if _, err := io.ReadFull(f, pre[:]); err != nil || string(pre[:6]) != "\x93NUMPY" {
		return errors.New("not a .npy file (bad magic)")
	}
	var hlen, start int64
	switch pre[6] {
	case 1:
		hlen, start = int64(le.LittleEndian.Uint16(pre[8:10])), 10
	case 2, 3:
		var rest [2]byte
		if _, err := io.ReadFull(f, rest[:]); err != nil {
			return errors.New("truncated .npy header")
		}
		hlen, start = int64(le.LittleEndian.Uint32(append(pre[8:10:10], rest[:]...))), 12
	default:
		return fmt.Errorf(".npy version %d.%d is not supported", pre[6], pre[7])
	}
	if start+hlen > st.Size() || hlen > 1<<20 {
		return fmt.Errorf(".npy header of %d bytes runs past the end of the file (%d bytes)", hlen, st.Size())
	}
	hdr := make([]byte, hlen)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return fmt.Errorf("truncated .npy header: %w", err)
	}
	d := npyDescr.FindStringSubmatch(string(hdr))
	if d == nil {
		return errors.New(".npy header has no numeric 'descr'")
	}
	item, err := strconv.ParseUint(d[3], 10, 8)
	if err != nil || item == 0 {
		return fmt.Errorf(".npy descr %q has no item size", d[0])
	}
	s := npyShape.FindStringSubmatch(string(hdr))
	if s == nil {
		return errors.New(".npy header has no 'shape'")
	}
	n := item
	for _, dim := range strings.Split(s[1], ",") {
		if dim = strings.TrimSpace(dim); dim == "" {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSuffix(dim, "L"), 10, 63)
		if err != nil {
			return fmt.Errorf(".npy shape (%s): %q is not a dimension", s[1], dim)
		}
		if v != 0 && n > math.MaxInt64/v {
			return fmt.Errorf(".npy shape (%s) overflows", s[1])
		}
		n *= v
	}
	if have := uint64(st.Size() - start - hlen); n > have {
		return fmt.Errorf(".npy shape (%s) of %s needs %d bytes of data, the file has %d", s[1], d[1]+d[2]+d[3], n, have)
	}
	return nil
}
