package mlx

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"strings"
	"unsafe"

	"github.com/mlx-genkit/genkit/engine/gguf"
	"github.com/mlx-genkit/genkit/internal/atomicfile"
)

// MetaKind says what a GGUF metadata value holds.
type MetaKind int

// The kinds of GGUF metadata values.
const (
	MetaNone MetaKind = iota
	MetaNumbers
	MetaString
	MetaStrings
)

// MetaValue is one GGUF metadata value: numbers (scalars and numeric arrays,
// bools as 0/1), a string or a list of strings.
type MetaValue struct {
	Kind    MetaKind
	Numbers []float64
	String  string
	Strings []string
}

// Int returns the first number as an int, with ok false when there is none.
func (m MetaValue) Int() (int, bool) {
	if m.Kind != MetaNumbers || len(m.Numbers) == 0 {
		return 0, false
	}
	return int(m.Numbers[0]), true
}

// Float returns the first number, with ok false when there is none.
func (m MetaValue) Float() (float64, bool) {
	if m.Kind != MetaNumbers || len(m.Numbers) == 0 {
		return 0, false
	}
	return m.Numbers[0], true
}

type cmap struct{ c C.gk_map }

func (m cmap) free() { C.gk_map_free(m.c) }

func (m cmap) arrays() (map[string]*Array, error) {
	n := int(C.gk_map_len(m.c))
	out := make(map[string]*Array, n)
	for i := 0; i < n; i++ {
		var a C.gk_array
		if err := check("map_take", C.gk_map_take(&a, m.c, C.int(i))); err != nil {
			for _, x := range out {
				x.Free()
			}
			return nil, err
		}
		out[C.GoString(C.gk_map_key(m.c, C.int(i)))] = wrap(a)
	}
	return out, nil
}

func (m cmap) meta() (map[string]MetaValue, error) {
	n := int(C.gk_map_meta_len(m.c))
	out := make(map[string]MetaValue, n)
	for i := 0; i < n; i++ {
		var key *C.char
		var kind C.int
		if err := check("map_meta", C.gk_map_meta(m.c, C.int(i), &key, &kind)); err != nil {
			return nil, err
		}
		k := C.GoString(key)
		switch kind {
		case 1:
			var a C.gk_array
			if err := check("map_meta_array", C.gk_map_meta_array(&a, m.c, C.int(i))); err != nil {
				return nil, err
			}
			arr := wrap(a)
			v, err := arr.Float64s()
			arr.Free()
			if err != nil {
				return nil, fmt.Errorf("metadata %s: %w", k, err)
			}
			out[k] = MetaValue{Kind: MetaNumbers, Numbers: v}
		case 2:
			out[k] = MetaValue{Kind: MetaString, String: C.GoString(C.gk_map_meta_string(m.c, C.int(i)))}
		case 3:
			l := int(C.gk_map_meta_list_len(m.c, C.int(i)))
			ss := make([]string, l)
			for j := range ss {
				ss[j] = C.GoString(C.gk_map_meta_list_item(m.c, C.int(i), C.int(j)))
			}
			out[k] = MetaValue{Kind: MetaStrings, Strings: ss}
		default:
			out[k] = MetaValue{Kind: MetaNone}
		}
	}
	return out, nil
}

// LoadSafetensors reads every tensor of a .safetensors file and its string
// metadata. Arrays are loaded lazily by MLX on first evaluation.
func LoadSafetensors(path string) (map[string]*Array, map[string]string, error) {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	var m C.gk_map
	if err := check("load_safetensors", C.gk_load_safetensors(&m, cp)); err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	cm := cmap{m}
	defer cm.free()
	arrays, err := cm.arrays()
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	meta, err := cm.meta()
	if err != nil {
		Free(values(arrays)...)
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	strs := make(map[string]string, len(meta))
	for k, v := range meta {
		strs[k] = v.String
	}
	return arrays, strs, nil
}

// LoadGGUF reads the tensors and metadata of a GGUF file. A file of F32,
// F16, Q4_0, Q4_1 and Q8_0 tensors goes through MLX's reader: Q4_0, Q4_1 and
// Q8_0 tensors come back as MLX affine-quantized triples (name.weight,
// name.scales, name.biases; group size 32). A file holding any other
// supported type (Q2_K-Q6_K, Q5_0, Q5_1, IQ4_NL, IQ4_XS, BF16) is read by
// genkit itself: every tensor comes back with exactly ggml's dequantized
// values, as float32, or for Q4_K matrices as an exact affine 4-bit triple
// (see loadGGUFGo). Other types (the other IQ formats, Q8_K, ...) are
// refused, naming the tensor and the type.
//
// MLX's reader trusts the file, so the header is checked first by
// engine/gguf (types, lengths, dimensions, every tensor inside the file):
// a malformed file is refused with an error instead of crashing.
func LoadGGUF(path string) (map[string]*Array, map[string]MetaValue, error) {
	h, err := gguf.ReadHeader(path)
	if err != nil {
		return nil, nil, err
	}
	if err := h.CheckTypes(); err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	if needsGoLoader(h) {
		return loadGGUFGo(path, h)
	}
	return loadGGUFMLX(path)
}

// loadGGUFMLX reads a GGUF file with MLX's own reader.
func loadGGUFMLX(path string) (map[string]*Array, map[string]MetaValue, error) {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	var m C.gk_map
	if err := check("load_gguf", C.gk_load_gguf(&m, cp)); err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	cm := cmap{m}
	defer cm.free()
	arrays, err := cm.arrays()
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	meta, err := cm.meta()
	if err != nil {
		Free(values(arrays)...)
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	return arrays, meta, nil
}

func values(m map[string]*Array) []*Array {
	out := make([]*Array, 0, len(m))
	for _, a := range m {
		out = append(out, a)
	}
	return out
}

// atomicSave writes through a temporary file in the target directory that
// carries ext (MLX appends it otherwise), then renames it over path.
func atomicSave(path, ext string, save func(tmp string) error) error {
	return atomicfile.WriteWith(path, ext, 0o644, save)
}

func buildMap(arrays map[string]*Array) (cmap, error) {
	var m C.gk_map
	if err := check("map_new", C.gk_map_new(&m)); err != nil {
		return cmap{}, err
	}
	for k, a := range arrays {
		if !a.valid() {
			C.gk_map_free(m)
			return cmap{}, errNil("save " + k)
		}
		ck := C.CString(k)
		rc := C.gk_map_put(m, ck, a.c)
		C.free(unsafe.Pointer(ck))
		if err := check("map_put", rc); err != nil {
			C.gk_map_free(m)
			return cmap{}, err
		}
	}
	return cmap{m}, nil
}

// SaveSafetensors writes arrays and string metadata to path atomically.
func SaveSafetensors(path string, arrays map[string]*Array, meta map[string]string) error {
	return atomicSave(path, ".safetensors", func(tmp string) error {
		m, err := buildMap(arrays)
		if err != nil {
			return err
		}
		defer m.free()
		for k, v := range meta {
			ck, cv := C.CString(k), C.CString(v)
			rc := C.gk_map_put_meta_string(m.c, ck, cv)
			C.free(unsafe.Pointer(ck))
			C.free(unsafe.Pointer(cv))
			if err := check("map_put_meta", rc); err != nil {
				return err
			}
		}
		cp := C.CString(tmp)
		defer C.free(unsafe.Pointer(cp))
		return check("save_safetensors", C.gk_save_safetensors(cp, m.c))
	})
}

// SaveGGUF writes arrays and metadata to a GGUF file atomically. String
// values are written as strings; numeric values as arrays of the given
// element type (a 0-d array for a single number when dtype is set).
func SaveGGUF(path string, arrays map[string]*Array, strs map[string]string, nums map[string]*Array) error {
	if !strings.HasSuffix(path, ".gguf") {
		return fmt.Errorf("save %s: a GGUF file name must end in .gguf", path)
	}
	return atomicSave(path, ".gguf", func(tmp string) error {
		m, err := buildMap(arrays)
		if err != nil {
			return err
		}
		defer m.free()
		for k, v := range strs {
			ck, cv := C.CString(k), C.CString(v)
			rc := C.gk_map_put_meta_string(m.c, ck, cv)
			C.free(unsafe.Pointer(ck))
			C.free(unsafe.Pointer(cv))
			if err := check("map_put_meta", rc); err != nil {
				return err
			}
		}
		for k, a := range nums {
			if !a.valid() {
				return errNil("save metadata " + k)
			}
			ck := C.CString(k)
			rc := C.gk_map_put_meta_array(m.c, ck, a.c)
			C.free(unsafe.Pointer(ck))
			if err := check("map_put_meta", rc); err != nil {
				return err
			}
		}
		cp := C.CString(tmp)
		defer C.free(unsafe.Pointer(cp))
		return check("save_gguf", C.gk_save_gguf(cp, m.c))
	})
}

// LoadNpy reads a .npy file. The header is checked first (dtype, shape,
// the data inside the file): MLX trusts it and would allocate whatever the
// shape says.
func LoadNpy(path string) (*Array, error) {
	if err := checkNpy(path); err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	a, err := call("load_npy", func(o *C.gk_array) C.int { return C.gk_load_npy(o, cp) })
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return a, nil
}

// SaveNpy writes a to a .npy file atomically.
func SaveNpy(path string, a *Array) error {
	if !a.valid() {
		return errNil("save_npy")
	}
	return atomicSave(path, ".npy", func(tmp string) error {
		cp := C.CString(tmp)
		defer C.free(unsafe.Pointer(cp))
		return check("save_npy", C.gk_save_npy(cp, a.c))
	})
}

// LoadGGUFMeta reads only a GGUF file's metadata (the tensors are loaded
// lazily by MLX and released at once; a file genkit reads itself is not
// dequantized) and the number of tensors.
func LoadGGUFMeta(path string) (int, map[string]MetaValue, error) {
	h, err := gguf.ReadHeader(path)
	if err != nil {
		return 0, nil, err
	}
	if err := h.CheckTypes(); err != nil {
		return 0, nil, fmt.Errorf("load %s: %w", path, err)
	}
	if needsGoLoader(h) {
		return len(h.Tensors), metaFromHeader(h), nil
	}
	arrays, meta, err := loadGGUFMLX(path)
	if err != nil {
		return 0, nil, err
	}
	Free(values(arrays)...)
	return len(arrays), meta, nil
}
