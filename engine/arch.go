package engine

import (
	"sort"
	"strings"
)

// Arch describes how one model family differs from the shared decoder. Each
// architecture lives in a file of its own and registers itself.
type Arch struct {
	// Name is the config.json model_type and GGUF general.architecture.
	Name string
	// Class is the transformers class name, e.g. LlamaForCausalLM.
	Class string
	// QKVBias says q/k/v projections always carry biases (qwen2).
	QKVBias bool
	// QKNorm says q and k are RMS-normalised per head before RoPE (qwen3).
	QKNorm bool
	// GGUFPermutedQK says llama.cpp's converter permuted Q/K rows, so RoPE
	// must rotate adjacent pairs for GGUF weights.
	GGUFPermutedQK bool
}

func (a Arch) adjust(c *Config) {
	if a.QKNorm {
		c.QKNorm = true
	}
}

var registry = map[string]Arch{}

// Register adds an architecture; called from each architecture's file.
func Register(a Arch) { registry[a.Name] = a }

func lookupArch(name string) (Arch, bool) {
	a, ok := registry[name]
	return a, ok
}

func archFromClass(class string) string {
	for _, a := range registry {
		if a.Class == class {
			return a.Name
		}
	}
	return strings.ToLower(strings.TrimSuffix(class, "ForCausalLM"))
}

func archNames() []string {
	var out []string
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
