package engine

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mlx-genkit/genkit/engine/tokenizer"
	"github.com/mlx-genkit/genkit/mlx"
)

// LoadOptions control how weights are loaded.
type LoadOptions struct {
	// Group, when it has more than one rank, shards every block across its
	// ranks (tensor parallelism, docs/distributed.md): each rank holds its
	// slice of the heads and of the MLP, and the blocks all-sum their
	// outputs. Every rank must load the same model with the same options
	// and run the same requests in the same order.
	Group *DistGroup
	// Weights says whether quantized weights stay quantized (run through
	// quantized_matmul) or are expanded to dense DType matrices.
	Weights WeightMode
	// DType is the compute dtype; 0 picks float32, unless NativeOnGPU.
	DType mlx.Dtype
	// NativeOnGPU, with DType 0, computes in the checkpoint's own float type
	// (float16 for GGUF) when the device is a GPU, and in float32 on the
	// CPU. Without it the default is float32 everywhere, the precision the
	// parity references are held to.
	NativeOnGPU bool
	// Tokenizer, when set, names a tokenizer.json used instead of the
	// model's own.
	Tokenizer string
}

// sharded reports whether the options shard the model over several ranks.
func (o LoadOptions) sharded() bool { return o.Group != nil && o.Group.Size() > 1 }

// WeightMode chooses how quantized weights are used.
type WeightMode int

const (
	// WeightsAuto expands quantized weights on the CPU when the dense model
	// fits in DenseBudget bytes (BLAS GEMM is much faster there than MLX's
	// CPU quantized kernels) and keeps them quantized elsewhere.
	WeightsAuto WeightMode = iota
	// WeightsQuantized always runs quantized weights through quantized_matmul.
	WeightsQuantized
	// WeightsDense always expands quantized weights (the values are exactly
	// the dequantized ones, so results match quantized_matmul up to rounding).
	WeightsDense
)

// DenseBudget caps the dense size WeightsAuto accepts on the CPU.
const DenseBudget = 4 << 30

func (mode WeightMode) dense(cfg *Config, dtype mlx.Dtype) bool {
	switch mode {
	case WeightsDense:
		return true
	case WeightsQuantized:
		return false
	}
	if dev, err := mlx.DefaultDevice(); err != nil || dev != mlx.CPU {
		return false
	}
	return cfg.ParamCount()*int64(dtype.Size()) <= DenseBudget
}

// LoadModel loads a model from a .gguf file or a model directory (HF or MLX
// layout). It must run on the MLX thread.
func LoadModel(path string, opts LoadOptions) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	if st.IsDir() {
		return loadDir(path, opts)
	}
	if strings.HasSuffix(strings.ToLower(path), ".gguf") {
		return loadGGUF(path, opts)
	}
	return nil, fmt.Errorf("load model %s: not a directory or a .gguf file", path)
}

func computeDtype(opts LoadOptions, native mlx.Dtype) mlx.Dtype {
	if opts.DType != 0 {
		return opts.DType
	}
	if !opts.NativeOnGPU {
		return mlx.Float32
	}
	if dev, err := mlx.DefaultDevice(); err == nil && dev == mlx.GPU && native.IsFloat() {
		return native
	}
	return mlx.Float32
}

func loadGGUF(path string, opts LoadOptions) (*Model, error) {
	arrays, meta, err := mlx.LoadGGUF(path) // checks the header first
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	src := &tensorSource{file: path, arrays: arrays, used: map[string]bool{}}
	defer src.free()
	cfg, err := configFromGGUF(meta, arrays)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	src.dtype = computeDtype(opts, mlx.Float16)
	dense := opts.Weights.dense(cfg, src.dtype)
	src.keepQ = keepQuantized(opts, dense, src.dtype) && !opts.sharded()
	src.group = opts.Group
	m, err := build(cfg, src, "gguf", dense)
	if err != nil {
		return nil, err
	}
	m.Source, m.Format = path, "gguf"
	if opts.Tokenizer != "" {
		m.Tokenizer, err = tokenizer.FromFile(opts.Tokenizer)
	} else {
		m.Tokenizer, err = tokenizer.FromGGUF(meta)
	}
	if err != nil {
		m.Free()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

func configFromGGUF(meta map[string]mlx.MetaValue, arrays map[string]*mlx.Array) (*Config, error) {
	arch := meta["general.architecture"].String
	a, ok := lookupGGUFArch(arch)
	if !ok {
		return nil, unknownArch(arch)
	}
	num := func(key string, def float64) float64 {
		if v, ok := meta[arch+"."+key].Float(); ok {
			return v
		}
		return def
	}
	c := &Config{
		Architecture:     a.Name,
		HiddenSize:       int(num("embedding_length", 0)),
		IntermediateSize: int(num("feed_forward_length", 0)),
		NumLayers:        int(num("block_count", 0)),
		NumHeads:         int(num("attention.head_count", 0)),
		RMSNormEps:       num("attention.layer_norm_rms_epsilon", 1e-5),
		RopeTheta:        num("rope.freq_base", 10000),
		MaxPositions:     int(num("context_length", 0)),
		TraditionalRoPE:  a.GGUFPermutedQK,
	}
	c.NumKVHeads = int(num("attention.head_count_kv", float64(c.NumHeads)))
	if c.NumHeads > 0 {
		c.HeadDim = int(num("attention.key_length", float64(c.HiddenSize/c.NumHeads)))
	}
	if t, ok := arrays["token_embd.weight"]; ok {
		c.VocabSize = t.Dim(0)
	}
	if v := int(num("vocab_size", 0)); v > 0 && c.VocabSize > 0 && v != c.VocabSize {
		return nil, fmt.Errorf("%s.vocab_size %d disagrees with token_embd rows %d", arch, v, c.VocabSize)
	}
	_, hasOutput := arrays["output.weight"]
	c.TieEmbeddings = !hasOutput
	if f, ok := meta[arch+".rope.scaling.factor"].Float(); ok && f != 0 && f != 1 {
		typ := meta[arch+".rope.scaling.type"].String
		if typ == "" {
			typ = "linear"
		}
		c.RopeScaling = &RopeScaling{Type: typ, Factor: f, OriginalMaxPositionEmbeddings: int(num("rope.scaling.original_context_length", 0))}
	}
	// What llama.cpp's converter writes for the other families.
	c.SlidingWindow = int(num("attention.sliding_window", 0))
	c.AttnSoftcap = num("attn_logit_softcapping", 0)
	c.FinalSoftcap = num("final_logit_softcapping", 0)
	c.EmbeddingMultiplier = num("embedding_scale", 0)
	c.AttentionMultiplier = num("attention.scale", 0)
	c.ResidualMultiplier = num("residual_scale", 0)
	c.LogitsScaling = num("logit_scale", 0)
	c.LocalRopeTheta = num("rope.freq_base_swa", 0)
	if n := int(num("rope.dimension_count", 0)); n > 0 && n != c.HeadDim && c.HeadDim > 0 {
		c.PartialRotaryFactor = float64(n) / float64(c.HeadDim)
	}
	if a.Name == "gemma2" || a.Name == "gemma3_text" {
		// llama.cpp's rule for the attention scale, which gemma GGUFs do
		// not carry: hidden/heads for the 27B models (46 and 62 layers),
		// head_dim otherwise.
		if a.Name == "gemma2" && c.NumLayers == 46 || a.Name == "gemma3_text" && c.NumLayers == 62 {
			c.QueryPreAttnScalar = float64(c.HiddenSize / c.NumHeads)
		}
	}
	for _, t := range []string{"rope_factors_long.weight", "rope_factors_short.weight"} {
		if _, ok := arrays[t]; ok {
			return nil, fmt.Errorf("GGUF tensor %s (LongRoPE scaling) is not supported; use a model without rope_scaling longrope", t)
		}
	}
	if a, ok := arrays["rope_freqs.weight"]; ok {
		rs, err := ropeFreqsScaling(a, c)
		if err != nil {
			return nil, err
		}
		c.RopeScaling = rs
	}
	if id, ok := meta["tokenizer.ggml.bos_token_id"].Int(); ok {
		c.BOSTokenID = &id
	}
	if id, ok := meta["tokenizer.ggml.eos_token_id"].Int(); ok {
		c.EOSTokenIDs = []int{id}
	}
	if id, ok := meta["tokenizer.ggml.eot_token_id"].Int(); ok && (len(c.EOSTokenIDs) == 0 || c.EOSTokenIDs[0] != id) {
		c.EOSTokenIDs = append(c.EOSTokenIDs, id)
	}
	if id, ok := meta["tokenizer.ggml.padding_token_id"].Int(); ok {
		c.PadTokenID = &id
	}
	if err := moeFromGGUF(c, arch, num, arrays); err != nil {
		return nil, err
	}
	if err := a.adjust(c, 0); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// ropeFreqsScaling reads a GGUF rope_freqs.weight tensor (Llama 3.1+ files:
// one divisor of each rotated pair's frequency, which llama.cpp applies as
// theta / factor) into a "rope_freqs" RopeScaling. It refuses a tensor
// whose length is not head_dim/2, a factor that is not finite and
// positive, and a file that also sets rope.scaling.factor.
func ropeFreqsScaling(a *mlx.Array, c *Config) (*RopeScaling, error) {
	if c.RopeScaling != nil {
		return nil, fmt.Errorf("rope_freqs.weight together with rope.scaling.type %q is not supported", c.RopeScaling.Type)
	}
	f32, err := mlx.AsType(a, mlx.Float32)
	if err != nil {
		return nil, fmt.Errorf("rope_freqs.weight: %w", err)
	}
	defer f32.Free()
	vals, err := f32.Float32s()
	if err != nil {
		return nil, fmt.Errorf("rope_freqs.weight: %w", err)
	}
	if a.Ndim() != 1 || len(vals) != c.HeadDim/2 {
		return nil, fmt.Errorf("rope_freqs.weight has shape %v; want [%d] (head_dim/2)", a.Shape(), c.HeadDim/2)
	}
	rs := &RopeScaling{Type: "rope_freqs", FreqFactors: make([]float64, len(vals))}
	for i, v := range vals {
		if !(v > 0) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("rope_freqs.weight[%d] = %g; factors must be finite and positive", i, v)
		}
		rs.FreqFactors[i] = float64(v)
	}
	return rs, nil
}

func loadDir(dir string, opts LoadOptions) (*Model, error) {
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	files, err := safetensorFiles(dir)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	src := &tensorSource{file: dir, arrays: map[string]*mlx.Array{}, used: map[string]bool{}, perBits: cfg.QuantizationPerOp}
	defer src.free()
	native := mlx.Float32
	for _, f := range files {
		arrays, _, err := mlx.LoadSafetensors(f)
		if err != nil {
			return nil, fmt.Errorf("load model: %w", err)
		}
		for k, a := range arrays {
			if old, dup := src.arrays[k]; dup {
				old.Free()
			}
			src.arrays[k] = a
			if strings.HasSuffix(k, "norm.weight") && a.Dtype().IsFloat() {
				native = a.Dtype()
			}
		}
	}
	src.dtype = computeDtype(opts, native)
	dense := opts.Weights.dense(cfg, src.dtype)
	src.keepQ = keepQuantized(opts, dense, src.dtype) && !opts.sharded()
	src.group = opts.Group
	m, err := build(cfg, src, "hf", dense)
	if err != nil {
		return nil, err
	}
	m.Source, m.Format = dir, "safetensors"
	if cfg.QuantBits > 0 {
		m.Format = "mlx"
	}
	_, errTok := os.Stat(filepath.Join(dir, "tokenizer.json"))
	if opts.Tokenizer != "" || errTok == nil {
		if m.Tokenizer, err = tokenizer.FromDir(dir, opts.Tokenizer); err != nil {
			m.Free()
			return nil, err
		}
		if len(cfg.EOSTokenIDs) > 0 {
			m.Tokenizer.EOS = mergeIDs(cfg.EOSTokenIDs, m.Tokenizer.EOS)
		}
		if m.Tokenizer.BOS < 0 && cfg.BOSTokenID != nil {
			m.Tokenizer.BOS = *cfg.BOSTokenID
		}
	}
	return m, nil
}

// safetensorFiles lists a checkpoint's weight files: the shards named by
// model.safetensors.index.json, or every *.safetensors file.
func safetensorFiles(dir string) ([]string, error) {
	idx := filepath.Join(dir, "model.safetensors.index.json")
	if data, err := os.ReadFile(idx); err == nil {
		var index struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(data, &index); err != nil {
			return nil, fmt.Errorf("%s: %w", idx, err)
		}
		seen := map[string]bool{}
		var out []string
		for _, f := range index.WeightMap {
			if !seen[f] {
				seen[f] = true
				p := filepath.Join(dir, f)
				if _, err := os.Stat(p); err != nil {
					return nil, fmt.Errorf("%s names shard %s: %w", idx, f, err)
				}
				out = append(out, p)
			}
		}
		sort.Strings(out)
		return out, nil
	}
	out, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no .safetensors files", dir)
	}
	sort.Strings(out)
	return out, nil
}

// mergeIDs returns a followed by the ids of b not in a.
func mergeIDs(a, b []int) []int {
	out := append([]int(nil), a...)
	for _, x := range b {
		found := false
		for _, y := range out {
			found = found || x == y
		}
		if !found {
			out = append(out, x)
		}
	}
	return out
}

// rowProducts says whether decode steps use the CPU's row products (see
// Linear.Apply): float32 compute on the CPU, unless GENKIT_ROW_PRODUCT=0.
func rowProducts(dtype mlx.Dtype) bool {
	if dtype != mlx.Float32 || os.Getenv("GENKIT_ROW_PRODUCT") == "0" {
		return false
	}
	dev, err := mlx.DefaultDevice()
	return err == nil && dev == mlx.CPU
}

// keepQuantized says whether 4- and 8-bit weights stay beside their dense
// expansion (with --weights auto): decode steps then read the quantized
// weights (mlx.QRowProduct) while prefill keeps the BLAS GEMM.
func keepQuantized(opts LoadOptions, dense bool, dtype mlx.Dtype) bool {
	return dense && opts.Weights == WeightsAuto && rowProducts(dtype)
}
