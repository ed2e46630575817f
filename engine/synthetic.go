package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mlx-genkit/genkit/internal/atomicfile"
	"github.com/mlx-genkit/genkit/mlx"
)

// SyntheticSpec is the shape of a published model, for benchmarks with
// random weights where the real checkpoint cannot be had. Field meanings
// follow Hugging Face's config.json.
type SyntheticSpec struct {
	Name             string
	Source           string // where the shape is published
	Architecture     string
	Hidden           int
	Intermediate     int
	Layers           int
	Heads            int
	KVHeads          int
	HeadDim          int
	Vocab            int
	RopeTheta        float64
	RMSNormEps       float64
	MaxPositions     int
	TieEmbeddings    bool
	RegularTokens    int // tokenizer entries before the special tokens
	SpecialTokenBase int // id of the first special token
}

// Params is the number of weights in the spec.
func (s SyntheticSpec) Params() int64 {
	q := int64(s.Heads * s.HeadDim)
	kv := int64(s.KVHeads * s.HeadDim)
	h, f := int64(s.Hidden), int64(s.Intermediate)
	layer := h*q + 2*h*kv + q*h + 3*h*f + 2*h + 2*int64(s.HeadDim)
	n := int64(s.Vocab)*h + int64(s.Layers)*layer + h
	if !s.TieEmbeddings {
		n += int64(s.Vocab) * h
	}
	return n
}

// DeepenPast returns s with the fewest layers whose weights, at
// bytesPerWeight bytes each, take more than bytes (its name says the
// count): a model that provably does not fit a device of that size.
func (s SyntheticSpec) DeepenPast(bytes int64, bytesPerWeight int) SyntheticSpec {
	flat := s
	flat.Layers = 0
	base := flat.Params()
	flat.Layers = 1
	per := flat.Params() - base
	weights := bytes / int64(bytesPerWeight)
	n := 1
	if weights >= base {
		n = int((weights-base)/per) + 1
	}
	s.Layers = n
	s.Name += fmt.Sprintf("-%dl", n)
	return s
}

var syntheticSpecs = []SyntheticSpec{
	{Name: "qwen3-4b", Source: "Qwen/Qwen3-4B config.json", Architecture: "qwen3", Hidden: 2560, Intermediate: 9728,
		Layers: 36, Heads: 32, KVHeads: 8, HeadDim: 128, Vocab: 151936, RopeTheta: 1e6, RMSNormEps: 1e-6,
		MaxPositions: 40960, TieEmbeddings: true, RegularTokens: 151643, SpecialTokenBase: 151643},
	{Name: "qwen3-0.6b", Source: "Qwen/Qwen3-0.6B config.json", Architecture: "qwen3", Hidden: 1024, Intermediate: 3072,
		Layers: 28, Heads: 16, KVHeads: 8, HeadDim: 128, Vocab: 151936, RopeTheta: 1e6, RMSNormEps: 1e-6,
		MaxPositions: 40960, TieEmbeddings: true, RegularTokens: 151643, SpecialTokenBase: 151643},
	// A few-megabyte shape of the same family, for tests of the machinery.
	// Llama 3 70B's shape with 56 of its 80 layers: 100 GB in bfloat16,
	// more than one 80 GB GPU holds, for the tensor-parallel benchmark.
	{Name: "llama3-70b-56l", Source: "meta-llama/Llama-3.1-70B config.json, 56 layers", Architecture: "llama", Hidden: 8192,
		Intermediate: 28672, Layers: 56, Heads: 64, KVHeads: 8, HeadDim: 128, Vocab: 128256, RopeTheta: 500000,
		RMSNormEps: 1e-5, MaxPositions: 131072, TieEmbeddings: false, RegularTokens: 128000, SpecialTokenBase: 128000},
	{Name: "qwen3-test", Source: "genkit's tests", Architecture: "qwen3", Hidden: 64, Intermediate: 128,
		Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, Vocab: 1024, RopeTheta: 1e6, RMSNormEps: 1e-6,
		MaxPositions: 4096, TieEmbeddings: true, RegularTokens: 1000, SpecialTokenBase: 1000},
}

// LookupSynthetic finds a synthetic shape by name.
func LookupSynthetic(name string) (SyntheticSpec, error) {
	var names []string
	for _, s := range syntheticSpecs {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return SyntheticSpec{}, fmt.Errorf("unknown synthetic shape %q (known: %s)", name, strings.Join(names, ", "))
}

// f16Floor is the smallest normal float16 magnitude (2^-14). Synthetic
// weights below it are written as zero, so every bfloat16 value is exactly
// representable in float16 too: a converter that writes F16 (llama.cpp's)
// then holds the very values the bfloat16 checkpoint holds.
const f16Floor = 1.0 / 16384

// writeSynthetic writes a Hugging Face directory (config.json,
// model.safetensors in bfloat16, a byte-level BPE tokenizer.json and
// tokenizer_config.json) with the spec's shape and uniform random weights
// from seed: the same seed writes the same values. Linear and embedding
// weights have standard deviation 0.02 (HF's initializer_range), norm
// weights lie in [0.9, 1.1]. Runs on the MLX thread.
func writeSynthetic(dir string, spec SyntheticSpec, seed uint64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("synthetic: %w", err)
	}
	s := mlx.NewScope()
	defer s.Close()
	names, gen := syntheticTensors(s, spec, seed)
	tensors := map[string]*mlx.Array{}
	for _, name := range names {
		// One tensor at a time, so only its float32 temporaries are alive
		// (all of them at once would need four times the model in memory).
		t := mlx.NewScope()
		out := gen(t, name)
		if err := t.Err(); err != nil {
			t.Close()
			s.Fail(err)
			break
		}
		if err := mlx.Eval(out); err != nil {
			t.Close()
			s.Fail(err)
			break
		}
		t.Keep(out)
		t.Close()
		tensors[name] = s.Track(out, nil)
	}
	if err := s.Err(); err != nil {
		return fmt.Errorf("synthetic %s: %w", spec.Name, err)
	}
	if err := mlx.SaveSafetensors(filepath.Join(dir, "model.safetensors"), tensors, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("synthetic %s: %w", spec.Name, err)
	}
	if err := writeSyntheticConfig(dir, spec); err != nil {
		return err
	}
	return writeSyntheticTokenizer(dir, spec)
}

// syntheticTensors names every tensor of spec (Hugging Face names, sorted)
// and returns a function making one of them, in bfloat16, unevaluated, in
// scope t. Each tensor draws from its own key, split from the seed's by its
// place in name order, so values depend on neither map order nor which
// tensors are made. Linear and embedding weights have standard deviation
// 0.02 (HF's initializer_range), norm weights lie in [0.9, 1.1].
func syntheticTensors(s *mlx.Scope, spec SyntheticSpec, seed uint64) ([]string, func(t *mlx.Scope, name string) *mlx.Array) {
	key := s.Track(mlx.RandomKey(seed))
	floor := s.Track(mlx.Scalar(f16Floor, mlx.Float32))
	zero := s.Track(mlx.Scalar(0, mlx.Bfloat16))
	type entry struct {
		shape []int
		norm  bool
		index int
	}
	entries := map[string]*entry{}
	var names []string
	put := func(name string, norm bool, shape ...int) {
		names = append(names, name)
		entries[name] = &entry{shape: shape, norm: norm}
	}
	q, kv := spec.Heads*spec.HeadDim, spec.KVHeads*spec.HeadDim
	put("model.embed_tokens.weight", false, spec.Vocab, spec.Hidden)
	put("model.norm.weight", true, spec.Hidden)
	if !spec.TieEmbeddings {
		put("lm_head.weight", false, spec.Vocab, spec.Hidden)
	}
	for i := 0; i < spec.Layers; i++ {
		n := hfNames(registry["llama"]).layer(i)
		put(n.attnNorm, true, spec.Hidden)
		put(n.ffnNorm, true, spec.Hidden)
		put(n.q+".weight", false, q, spec.Hidden)
		put(n.k+".weight", false, kv, spec.Hidden)
		put(n.v+".weight", false, kv, spec.Hidden)
		put(n.o+".weight", false, spec.Hidden, q)
		put(n.gate+".weight", false, spec.Intermediate, spec.Hidden)
		put(n.up+".weight", false, spec.Intermediate, spec.Hidden)
		put(n.down+".weight", false, spec.Hidden, spec.Intermediate)
		if spec.Architecture == "qwen3" {
			put(n.qNorm, true, spec.HeadDim)
			put(n.kNorm, true, spec.HeadDim)
		}
	}
	sort.Strings(names)
	for i, n := range names {
		entries[n].index = i
	}
	keys := s.Track(mlx.RandomSplit(key, len(names)))
	return names, func(t *mlx.Scope, name string) *mlx.Array {
		e := entries[name]
		i := e.index
		k := t.Track(mlx.Slice(keys, []int{i, 0}, []int{i + 1, 2}, nil))
		k = t.Track(mlx.Reshape(k, 2))
		u := t.Track(mlx.RandomUniform(k, mlx.Float32, e.shape...)) // [0, 1)
		lo, span := -math.Sqrt(3)*0.02, 2*math.Sqrt(3)*0.02         // std 0.02
		if e.norm {
			lo, span = 0.9, 0.2
		}
		w := t.Track(mlx.Add(t.Track(mlx.Multiply(u, t.Track(mlx.Scalar(span, mlx.Float32)))), t.Track(mlx.Scalar(lo, mlx.Float32))))
		b := t.Track(mlx.AsType(w, mlx.Bfloat16))
		tiny := t.Track(mlx.Less(t.Track(mlx.Abs(w)), floor))
		return t.Track(mlx.Where(tiny, zero, b))
	}
}

// LoadRandom builds the model of spec from the same random weights
// WriteSynthetic writes for seed, without writing or reading a file, in
// bfloat16 (or opts.DType). Under tensor parallelism (opts.Group) every
// rank makes each tensor and keeps its slice, one tensor at a time, so no
// process ever holds the whole model: the way to benchmark a model larger
// than one device. It must run on the MLX thread.
func LoadRandom(spec SyntheticSpec, seed uint64, opts LoadOptions) (*Model, error) {
	data, err := syntheticConfig(spec)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("synthetic %s: %w", spec.Name, err)
	}
	s := mlx.NewScope()
	defer s.Close()
	names, gen := syntheticTensors(s, spec, seed)
	src := &tensorSource{file: "synthetic " + spec.Name, arrays: map[string]*mlx.Array{}, used: map[string]bool{},
		dtype: opts.DType, group: opts.Group}
	if src.dtype == 0 {
		src.dtype = mlx.Bfloat16 // the checkpoint's own, as WriteSynthetic writes it
	}
	defer src.free()
	for _, name := range names {
		t := mlx.NewScope()
		a := gen(t, name)
		if err := t.Err(); err != nil {
			t.Close()
			return nil, fmt.Errorf("synthetic %s: %w", spec.Name, err)
		}
		t.Keep(a)
		t.Close()
		src.arrays[name] = a
	}
	m, err := build(cfg, src, "hf", true)
	if err != nil {
		return nil, err
	}
	m.Source, m.Format = "synthetic:"+spec.Name, "synthetic"
	return m, nil
}

func writeSyntheticConfig(dir string, spec SyntheticSpec) error {
	data, err := syntheticConfig(spec)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		return fmt.Errorf("synthetic: %w", err)
	}
	return nil
}

// syntheticConfig is spec's config.json.
func syntheticConfig(spec SyntheticSpec) ([]byte, error) {
	arch, ok := lookupArch(spec.Architecture)
	if !ok {
		return nil, fmt.Errorf("synthetic %s: unknown architecture %q", spec.Name, spec.Architecture)
	}
	c := map[string]any{
		"architectures": []string{arch.Class}, "model_type": spec.Architecture,
		"hidden_size": spec.Hidden, "intermediate_size": spec.Intermediate, "num_hidden_layers": spec.Layers,
		"num_attention_heads": spec.Heads, "num_key_value_heads": spec.KVHeads, "head_dim": spec.HeadDim,
		"vocab_size": spec.Vocab, "rms_norm_eps": spec.RMSNormEps, "rope_theta": spec.RopeTheta,
		"max_position_embeddings": spec.MaxPositions, "tie_word_embeddings": spec.TieEmbeddings,
		"attention_bias": false, "hidden_act": "silu", "torch_dtype": "bfloat16", "use_cache": true,
		"bos_token_id": spec.SpecialTokenBase, "eos_token_id": spec.SpecialTokenBase + 2,
		"genkit_synthetic": map[string]any{"shape": spec.Name, "source": spec.Source},
	}
	data, _ := json.MarshalIndent(c, "", "  ")
	return append(data, '\n'), nil
}

// syntheticSpecials are the special tokens of the Qwen family, at
// SpecialTokenBase onwards.
var syntheticSpecials = []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"}

// qwenSplit is the pre-tokenizer pattern of Qwen2 and Qwen3's tokenizers.
const qwenSplit = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// byteChars is GPT-2's byte-level alphabet: byte b is written as this rune.
func byteChars() []string {
	var printable []int
	for b := '!'; b <= '~'; b++ {
		printable = append(printable, int(b))
	}
	for b := 0xA1; b <= 0xAC; b++ {
		printable = append(printable, b)
	}
	for b := 0xAE; b <= 0xFF; b++ {
		printable = append(printable, b)
	}
	isPrintable := map[int]bool{}
	for _, b := range printable {
		isPrintable[b] = true
	}
	out := make([]string, 256)
	n := 0
	for b := 0; b < 256; b++ {
		if isPrintable[b] {
			out[b] = string(rune(b))
		} else {
			out[b] = string(rune(256 + n))
			n++
		}
	}
	return out
}

// writeSyntheticTokenizer writes a byte-level BPE tokenizer with the Qwen
// family's pre-tokenizer: the 256 byte symbols, then merged pairs and
// triples until RegularTokens entries, then the special tokens. Real text
// tokenizes with it (as bytes and byte pairs); its ids mean nothing.
func writeSyntheticTokenizer(dir string, spec SyntheticSpec) error {
	bytes := byteChars()
	vocab := make(map[string]int, spec.RegularTokens)
	var merges []string
	order := make([]string, 0, spec.RegularTokens)
	addTok := func(t string) {
		if _, dup := vocab[t]; dup || len(order) >= spec.RegularTokens {
			return
		}
		vocab[t] = len(order)
		order = append(order, t)
	}
	for _, b := range bytes {
		addTok(b)
	}
	// Merge the common symbols first (space, letters, digits), so ordinary
	// text gets multi-byte tokens even from a small vocabulary.
	common := []byte(" etaoinshrdlucmfwypvbgkjqxzETAOINSHRDLUCMFWYPVBGKJQXZ0123456789.,'-\n")
	ranked := make([]string, 0, 256)
	seen := map[byte]bool{}
	for _, c := range common {
		ranked = append(ranked, bytes[c])
		seen[c] = true
	}
	for b := 0; b < 256; b++ {
		if !seen[byte(b)] {
			ranked = append(ranked, bytes[b])
		}
	}
	// Pairs of symbols, then a pair and a symbol, merged until the vocabulary
	// is full.
	grow := func(lefts []string) []string {
		var made []string
		for _, a := range lefts {
			for _, b := range ranked {
				if len(order) >= spec.RegularTokens {
					return made
				}
				merges = append(merges, a+" "+b)
				addTok(a + b)
				made = append(made, a+b)
			}
		}
		return made
	}
	grow(grow(ranked))
	if len(order) < spec.RegularTokens {
		return fmt.Errorf("synthetic %s: %d regular tokens asked, %d made", spec.Name, spec.RegularTokens, len(order))
	}
	// The special tokens, as tokenizer.json's added_tokens and as
	// tokenizer_config.json's added_tokens_decoder (keyed by id).
	var added []map[string]any
	decoder := map[string]any{}
	for i, t := range syntheticSpecials {
		entry := map[string]any{"content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
		decoder[fmt.Sprint(spec.SpecialTokenBase+i)] = entry
		withID := map[string]any{"id": spec.SpecialTokenBase + i}
		for k, v := range entry {
			withID[k] = v
		}
		added = append(added, withID)
	}
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}
	tj := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil, "added_tokens": added,
		"normalizer": map[string]any{"type": "NFC"},
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": qwenSplit}, "behavior": "Isolated", "invert": false},
			byteLevel,
		}},
		"post_processor": byteLevel, "decoder": byteLevel,
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
			"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": merges},
	}
	data, err := json.Marshal(tj)
	if err != nil {
		return fmt.Errorf("synthetic tokenizer: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, "tokenizer.json"), data, 0o644); err != nil {
		return fmt.Errorf("synthetic: %w", err)
	}
	tc := map[string]any{"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": nil,
		"eos_token": syntheticSpecials[2], "pad_token": syntheticSpecials[0], "add_bos_token": false,
		"added_tokens_decoder": decoder, "model_max_length": spec.MaxPositions, "clean_up_tokenization_spaces": false}
	data, _ = json.MarshalIndent(tc, "", "  ")
	if err := atomicfile.Write(filepath.Join(dir, "tokenizer_config.json"), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("synthetic: %w", err)
	}
	return nil
}

// WriteSynthetic writes random weights of spec's shape (seeded) as an HF
// safetensors folder at dir; it enters the MLX thread itself.
func WriteSynthetic(ctx context.Context, dir string, spec SyntheticSpec, seed uint64) error {
	return mlx.Do(ctx, func() error { return writeSynthetic(dir, spec, seed) })
}
