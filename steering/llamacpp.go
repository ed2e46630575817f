package steering

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/mlx-genkit/genkit/engine/gguf"
)

// llama.cpp's control-vector convention, read from the llama.cpp source that
// `make peers` unpacks (llama-cpp-python 0.3.36's vendor/llama.cpp):
//
//   - common/common.cpp, common_control_vector_load_one: a tensor named
//     direction.N (N parsed as an integer) is stored at slot N of the
//     control vector; N = 0 and unparsable names make the whole file fail
//     ("invalid (zero) direction tensor layer index"); tensors must be F32
//     and 1-D, all of one length. No metadata key is read.
//   - src/llama-adapter.cpp, llama_adapter_cvec::apply / apply_to: slot il
//     is added to the output of block il (0-based), for 1 <= il < n_layer
//     and layer_start <= il <= layer_end (--control-vector-layer-range,
//     inclusive, in the same numbering; by default 1 .. n_layer).
//   - src/models/*.cpp: build_cvec(cur, il) comes last in block il, after
//     the feed-forward residual add: the output of HF's
//     model.model.layers[il], where genkit's block index points.
//
// So genkit's block L is llama.cpp's direction.L, with no shift, and block 0
// has no name there. llama.cpp's own cvector-generator writes the vector it
// measured after block il as direction.(il+1): that is a choice of that
// generator (its vectors act one block later than they were measured), not
// of the loader. `make interop` checks the mapping on the default model.

// ControlVectorVersion is the value of the GGUF key genkit.control_vector_version
// in control vectors genkit writes: version 2 files follow llama.cpp's
// convention (no direction.0, controlvector.layer_count an int32 count of
// the direction tensors, controlvector.model_hint the model's GGUF
// architecture). Files without the key (genkit before version 2, llama.cpp,
// repeng) use the same numbering and are read alike; only they may hold
// direction.0 (an older genkit file), which genkit reads as block 0 and
// llama.cpp refuses.
const ControlVectorVersion = 2

// controlVectorVersionKey is the GGUF key holding ControlVectorVersion.
const controlVectorVersionKey = "genkit.control_vector_version"

// LlamaCppDirection is the index N of the tensor direction.N that steers
// genkit's block (the output of HF's model.model.layers[block]) in a
// llama.cpp control vector; block 0 has none.
func LlamaCppDirection(block int) (int, error) {
	if block < 1 {
		return 0, fmt.Errorf("block %d cannot be steered by llama.cpp: its control vectors start at direction.1 (the output of block 1); use block 1 or later, or a .safetensors file for genkit and Python", block)
	}
	return block, nil
}

// BlockOfLlamaCppDirection is the genkit block that llama.cpp's tensor
// direction.n steers (the inverse of LlamaCppDirection).
func BlockOfLlamaCppDirection(n int) (int, error) {
	if n < 1 {
		return 0, fmt.Errorf("direction.%d: llama.cpp refuses direction indices below 1", n)
	}
	return n, nil
}

// parseDirection reads N from a tensor name direction.N (llama.cpp's rule:
// the text after the first dot, as an integer).
func parseDirection(name string) (int, bool) {
	head, rest, ok := strings.Cut(name, ".")
	if !ok || head != "direction" {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil
}

// LlamaCppRange is the --control-vector-layer-range START END that covers
// blocks (llama.cpp's numbering, inclusive).
func LlamaCppRange(blocks []int) (start, end int, err error) {
	if len(blocks) == 0 {
		return 0, 0, fmt.Errorf("no steered blocks")
	}
	sorted := append([]int(nil), blocks...)
	sort.Ints(sorted)
	if start, err = LlamaCppDirection(sorted[0]); err != nil {
		return 0, 0, err
	}
	end, err = LlamaCppDirection(sorted[len(sorted)-1])
	return start, end, err
}

// CheckLlamaCppControlVector reads a .gguf control vector with genkit's own
// GGUF reader and applies every rule llama.cpp's loader applies (and the
// ones genkit's writer promises: controlvector metadata, hidden size when
// hidden > 0, blocks below layers when layers > 0), naming the first rule
// broken. It returns the blocks the file steers.
func CheckLlamaCppControlVector(path string, hidden, layers int) ([]int, error) {
	h, err := gguf.ReadHeader(path)
	if err != nil {
		return nil, err
	}
	if a := h.Meta["general.architecture"]; a.Type != gguf.TypeString || a.Str != "controlvector" {
		return nil, fmt.Errorf("%s: general.architecture is %q, not controlvector", path, a.Str)
	}
	if len(h.Tensors) == 0 {
		return nil, fmt.Errorf("%s: no direction tensors", path)
	}
	var blocks []int
	n := -1
	for _, t := range h.Tensors {
		d, ok := parseDirection(t.Name)
		if !ok {
			return nil, fmt.Errorf("%s: tensor %q is not named direction.N (llama.cpp refuses the file)", path, t.Name)
		}
		b, err := BlockOfLlamaCppDirection(d)
		if err != nil {
			return nil, fmt.Errorf("%s: %w (llama.cpp refuses the file)", path, err)
		}
		if t.Type != 0 {
			return nil, fmt.Errorf("%s: %s is %s, llama.cpp needs F32", path, t.Name, gguf.TypeNames[t.Type])
		}
		if len(t.Dims) != 1 {
			return nil, fmt.Errorf("%s: %s has %d dimensions, llama.cpp needs 1", path, t.Name, len(t.Dims))
		}
		if n >= 0 && int(t.Dims[0]) != n {
			return nil, fmt.Errorf("%s: %s has %d values, the other directions %d", path, t.Name, t.Dims[0], n)
		}
		n = int(t.Dims[0])
		if hidden > 0 && n != hidden {
			return nil, fmt.Errorf("%s: %s has %d values, the model's hidden size is %d", path, t.Name, n, hidden)
		}
		if layers > 0 && b >= layers {
			return nil, fmt.Errorf("%s: %s steers block %d, the model has %d blocks", path, t.Name, b, layers)
		}
		blocks = append(blocks, b)
	}
	hint := h.Meta["controlvector.model_hint"]
	if hint.Type != gguf.TypeString || hint.Str == "" {
		return nil, fmt.Errorf("%s: controlvector.model_hint is missing", path)
	}
	count, ok := h.Meta["controlvector.layer_count"].Int()
	if !ok || int(count) != len(h.Tensors) {
		return nil, fmt.Errorf("%s: controlvector.layer_count is %d, the file holds %d direction tensors", path, count, len(h.Tensors))
	}
	sort.Ints(blocks)
	return blocks, nil
}
