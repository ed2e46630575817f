package engine

import (
	"fmt"
	"sort"
	"strings"

	"github.com/mlx-genkit/genkit/mlx"
)

// Arch describes one model family: how its config, checkpoint names and
// decoder block differ from the shared parts. Each architecture lives in a
// file of its own (arch_*.go) and registers itself.
type Arch struct {
	// Name is the config.json model_type.
	Name string
	// GGUFName is llama.cpp's general.architecture when it differs from
	// Name ("qwen3moe"); empty when llama.cpp writes no such GGUF or uses
	// Name.
	GGUFName string
	// Class is the transformers class name, e.g. LlamaForCausalLM.
	Class string
	// QKVBias says q/k/v projections always carry biases (qwen2).
	QKVBias bool
	// QKNorm says q and k are RMS-normalised before RoPE: per head, or over
	// all heads at once when QKNormFull (olmo2).
	QKNorm, QKNormFull bool
	// GGUFPermutedQK says llama.cpp's converter permuted Q/K rows, so RoPE
	// must rotate adjacent pairs for GGUF weights.
	GGUFPermutedQK bool
	// NormPlusOne: RMSNorm scales by (1 + weight) in checkpoints of this
	// family (gemma); llama.cpp's converter adds the one into GGUF files.
	NormPlusOne bool
	// EmbedScale multiplies embeddings by sqrt(hidden_size), rounded to
	// the compute dtype (gemma).
	EmbedScale bool
	// Norms names the block's norms: which of pre-attention, post-attention,
	// pre-MLP and post-MLP exist (see blockNorms).
	Norms blockNorms
	// Block runs one decoder block (see blocks.go); nil is the pre-norm
	// Llama block.
	Block blockFunc
	// Configure sets what the family fixes or defaults (layer types,
	// activation); slidingPattern is config.json's sliding_window_pattern.
	Configure func(c *Config, slidingPattern int) error
	// Prepare renames or splits a checkpoint's tensors into the shared
	// names before loading (phi3's fused projections); gguf says which
	// naming src uses.
	Prepare func(src *tensorSource, c *Config, gguf bool) error
	// Fusable says decode steps may run genkit's fused CPU and GPU blocks
	// (a pre-norm SwiGLU block with the standard scale, no window).
	Fusable bool
}

// blockNorms says which norms a block has.
type blockNorms struct {
	noPre bool // no input (pre-attention, pre-MLP) norms (olmo2)
	post  bool // post-attention and post-MLP norms (gemma2/3, olmo2)
}

// blockFunc runs block i on h and returns the block's output (before the
// hook). Arrays it makes belong to s; errors are recorded in s.
type blockFunc func(m *Model, s *mlx.Scope, i int, h *mlx.Array, f *pass) *mlx.Array

func (a Arch) adjust(c *Config, slidingPattern int) error {
	if a.QKNorm {
		c.QKNorm = true
	}
	if a.Configure != nil {
		return a.Configure(c, slidingPattern)
	}
	return nil
}

func (a Arch) block() blockFunc {
	if a.Block != nil {
		return a.Block
	}
	return llamaBlock
}

var registry = map[string]Arch{}

// Register adds an architecture; called from each architecture's file.
func Register(a Arch) { registry[a.Name] = a }

func lookupArch(name string) (Arch, bool) {
	a, ok := registry[name]
	return a, ok
}

// lookupGGUFArch finds an architecture by llama.cpp's name for it.
func lookupGGUFArch(name string) (Arch, bool) {
	for _, a := range registry {
		if a.GGUFName == name || (a.GGUFName == "" && a.Name == name) {
			return a, true
		}
	}
	return Arch{}, false
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

// unknownArch is the error for a model family genkit does not run.
func unknownArch(name string) error {
	return fmt.Errorf("unknown architecture %q (supported: %s)", name, strings.Join(archNames(), ", "))
}
