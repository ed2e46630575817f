package mlx

import (
	"bytes"
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

// MLX's .npy reader does not parse the header dict: it takes the dtype from
// bytes 11-13 of the header, the order from byte 34, the shape from between
// the last '(' and the last ')', reads the header as a C string (a NUL ends
// it and moves where the data is read from) and parses the dimensions by
// skipping two bytes after each number. A header that numpy would read one
// way can therefore mean another shape to MLX (the fuzzer found `'shape':
// ()` followed by `(400000000A0...`: a scalar to a dict parser,
// [400000000, 0] to MLX). checkNpy accepts only the layout numpy and MLX
// write, where both readings agree:
//
//	{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
//
// followed by spaces and a newline (MLX writes `(3, 4, )}`).
const (
	npyDescrPrefix   = "{'descr': '"         // the dtype starts at byte 11
	npyFortranPrefix = ", 'fortran_order': " // its value starts at byte 34
	npyShapePrefix   = ", 'shape': ("        // the only '(' of the header
	npyMaxHeader     = 1 << 20               // far above any real header
	npyMaxDim        = math.MaxInt32         // MLX's dimensions are ints
)

var (
	// npyDims is the inside of the shape tuple: "", "3", "3,", "3, 4",
	// "3, 4, " (digits and ", " only, which MLX's two-byte skip reads as
	// a dict parser does).
	npyDims = regexp.MustCompile(`^(?:\d+(?:, \d+)*(?:, ?)?)?$`)
	// npyTail follows the shape tuple: "}" or ", }", then padding.
	npyTail = regexp.MustCompile(`^,? ?\}[ \t\r\n]*$`)
)

// npyItemSize is the byte size of each dtype (without its byte-order
// character) that MLX reads.
var npyItemSize = map[string]uint64{
	"b1": 1, "i1": 1, "i2": 2, "i4": 4, "i8": 8, "u1": 1, "u2": 2, "u4": 4, "u8": 8,
	"f2": 2, "f4": 4, "f8": 8, "c8": 8, "V2": 2,
}

// checkNpy reads a .npy file's header and checks, before MLX reads the
// file (it trusts the header and allocates what the shape says), that the
// header is complete, laid out as numpy writes it (so that MLX's positional
// reading sees the dtype and shape checked here), names a dtype MLX reads
// and a shape whose data fits in the file.
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
	case 2:
		var rest [2]byte
		if _, err := io.ReadFull(f, rest[:]); err != nil {
			return errors.New("truncated .npy header")
		}
		hlen, start = int64(le.LittleEndian.Uint32(append(pre[8:10:10], rest[:]...))), 12
	default:
		return fmt.Errorf(".npy version %d.%d is not supported (versions 1 and 2 are)", pre[6], pre[7])
	}
	if start+hlen > st.Size() || hlen > npyMaxHeader {
		return fmt.Errorf(".npy header of %d bytes runs past the end of the file (%d bytes)", hlen, st.Size())
	}
	hdr := make([]byte, hlen)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return fmt.Errorf("truncated .npy header: %w", err)
	}
	descr, shape, n, err := parseNpyHeader(hdr)
	if err != nil {
		return err
	}
	if have := uint64(st.Size() - start - hlen); n > have {
		return fmt.Errorf(".npy shape (%s) of %s needs %d bytes of data, the file has %d", shape, descr, n, have)
	}
	return nil
}

// parseNpyHeader reads the header dict hdr and returns the dtype, the
// shape tuple's inside and the data's byte size, or an error naming what
// is wrong.
func parseNpyHeader(hdr []byte) (descr, shape string, n uint64, err error) {
	if i := bytes.IndexByte(hdr, 0); i >= 0 {
		return "", "", 0, fmt.Errorf(".npy header holds a NUL byte at header offset %d", i)
	}
	h := string(hdr)
	bad := func(what string, at int) error {
		got := h[at:]
		if len(got) > 24 {
			got = got[:24] + "..."
		}
		return fmt.Errorf(".npy header is not laid out as numpy writes it: want %s at header offset %d, found %q", what, at, got)
	}
	if !strings.HasPrefix(h, npyDescrPrefix) {
		return "", "", 0, bad(strconv.Quote(npyDescrPrefix), 0)
	}
	at := len(npyDescrPrefix)
	if len(h) < at+4 || h[at+3] != '\'' {
		return "", "", 0, bad("a three-character dtype such as '<f4'", at)
	}
	descr = h[at : at+3]
	item, ok := npyItemSize[descr[1:]]
	if !ok || !strings.ContainsRune("<>|=", rune(descr[0])) {
		return "", "", 0, fmt.Errorf(".npy dtype %q is not supported (want a byte order <, >, | or = and one of b1, i1-i8, u1-u8, f2, f4, f8, c8, V2)", descr)
	}
	at += 4
	if !strings.HasPrefix(h[at:], npyFortranPrefix) {
		return "", "", 0, bad(strconv.Quote(npyFortranPrefix), at)
	}
	at += len(npyFortranPrefix)
	switch {
	case strings.HasPrefix(h[at:], "True"):
		at += len("True")
	case strings.HasPrefix(h[at:], "False"):
		at += len("False")
	default:
		return "", "", 0, bad("True or False", at)
	}
	if !strings.HasPrefix(h[at:], npyShapePrefix) {
		return "", "", 0, bad(strconv.Quote(npyShapePrefix), at)
	}
	at += len(npyShapePrefix)
	end := strings.IndexByte(h[at:], ')')
	if end < 0 {
		return "", "", 0, errors.New(".npy header's shape has no closing ')'")
	}
	shape = h[at : at+end]
	if !npyDims.MatchString(shape) {
		return "", "", 0, fmt.Errorf(".npy shape (%s) is not a tuple of dimensions written as numpy writes them (\"3, 4\")", shape)
	}
	if !npyTail.MatchString(h[at+end+1:]) {
		return "", "", 0, bad("'}' and padding after the shape", at+end+1)
	}
	n = item
	for _, dim := range strings.Split(shape, ",") {
		if dim = strings.TrimSpace(dim); dim == "" {
			continue
		}
		v, err := strconv.ParseUint(dim, 10, 64)
		if err != nil || v > npyMaxDim {
			return "", "", 0, fmt.Errorf(".npy shape (%s): dimension %s is larger than %d", shape, dim, npyMaxDim)
		}
		if v != 0 && n > math.MaxInt64/v {
			return "", "", 0, fmt.Errorf(".npy shape (%s) overflows", shape)
		}
		n *= v
	}
	return descr, shape, n, nil
}
