package tokenizer

import (
	"encoding/json"
	"fmt"

	"github.com/mlx-genkit/genkit/mlx"
)

// ggml token types.
const (
	typeNormal      = 1
	typeUnknown     = 2
	typeControl     = 3
	typeUserDefined = 4
	typeUnused      = 5
	typeByte        = 6
)

// The GPT-2 byte-level split and the pre-tokenizer splits of other BPE
// families (regular expressions are facts of each model's tokenizer).
const (
	llama3Split = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Split  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

func byteLevel(useRegex bool) map[string]any {
	return map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": useRegex}
}

func splitThenBytes(pattern string) map[string]any {
	return map[string]any{"type": "Sequence", "pretokenizers": []any{
		map[string]any{"type": "Split", "pattern": map[string]any{"Regex": pattern}, "behavior": "Isolated", "invert": false},
		byteLevel(false),
	}}
}

// preTokenizer returns the HF pre-tokenizer for a GGUF tokenizer.ggml.pre.
func preTokenizer(pre string) (map[string]any, error) {
	switch pre {
	case "", "default", "gpt2", "gpt-2":
		return byteLevel(true), nil
	case "smollm", "starcoder", "refact", "codeshell":
		// Digits one by one, then the GPT-2 byte-level split.
		return map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Digits", "individual_digits": true}, byteLevel(true),
		}}, nil
	case "llama-bpe", "llama3", "smaug-bpe":
		return splitThenBytes(llama3Split), nil
	case "qwen2", "deepseek-r1-qwen":
		return splitThenBytes(qwen2Split), nil
	}
	return nil, fmt.Errorf("GGUF pre-tokenizer %q is not supported (gpt2, smollm, llama-bpe, qwen2); pass a tokenizer.json", pre)
}

// GGUFJSON renders the tokenizer described by GGUF metadata as a Hugging
// Face tokenizer.json: byte-level BPE for tokenizer.ggml.model "gpt2",
// SentencePiece (as a BPE model with merges derived from the scores and
// byte fallback) for "llama".
func GGUFJSON(meta map[string]mlx.MetaValue) ([]byte, error) {
	switch model := meta["tokenizer.ggml.model"].String; model {
	case "gpt2":
	case "llama":
		return spmJSON(meta)
	default:
		return nil, fmt.Errorf("GGUF tokenizer model %q is not supported (supported: \"gpt2\" byte-level BPE, \"llama\" SentencePiece); pass a tokenizer.json", model)
	}
	tokens := meta["tokenizer.ggml.tokens"].Strings
	merges := meta["tokenizer.ggml.merges"].Strings
	if len(tokens) == 0 || len(merges) == 0 {
		return nil, fmt.Errorf("GGUF metadata lacks tokenizer.ggml.tokens or tokenizer.ggml.merges")
	}
	types := meta["tokenizer.ggml.token_type"].Numbers
	if len(types) != 0 && len(types) != len(tokens) {
		return nil, fmt.Errorf("GGUF tokenizer: %d token types for %d tokens", len(types), len(tokens))
	}
	pre, err := preTokenizer(meta["tokenizer.ggml.pre"].String)
	if err != nil {
		return nil, err
	}
	vocab := make(map[string]int, len(tokens))
	added := []map[string]any{} // a list even when empty: tokenizers refuses null
	for id, tok := range tokens {
		vocab[tok] = id
		if len(types) > 0 && (types[id] == typeControl || types[id] == typeUserDefined) {
			added = append(added, map[string]any{"id": id, "content": tok, "single_word": false,
				"lstrip": false, "rstrip": false, "normalized": false, "special": types[id] == typeControl})
		}
	}
	spec := map[string]any{
		"version":        "1.0",
		"truncation":     nil,
		"padding":        nil,
		"added_tokens":   added,
		"normalizer":     nil,
		"pre_tokenizer":  pre,
		"post_processor": nil,
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": merges},
	}
	return json.Marshal(spec)
}

// FromGGUF builds the tokenizer described by GGUF metadata (byte-level BPE:
// tokenizer.ggml.model = gpt2).
func FromGGUF(meta map[string]mlx.MetaValue) (*Tokenizer, error) {
	data, err := GGUFJSON(meta)
	if err != nil {
		return nil, err
	}
	tokens := meta["tokenizer.ggml.tokens"].Strings
	types := meta["tokenizer.ggml.token_type"].Numbers
	t, err := FromJSON(data)
	if err != nil {
		return nil, fmt.Errorf("GGUF tokenizer: %w", err)
	}
	t.tokens = tokens
	t.vocab = len(tokens)
	id := func(key string) int {
		if v, ok := meta[key].Int(); ok {
			return v
		}
		return -1
	}
	t.BOS, t.Pad = id("tokenizer.ggml.bos_token_id"), id("tokenizer.ggml.padding_token_id")
	if e := id("tokenizer.ggml.eos_token_id"); e >= 0 {
		t.EOS = append(t.EOS, e)
	}
	if e := id("tokenizer.ggml.eot_token_id"); e >= 0 && !t.IsEOS(e) {
		t.EOS = append(t.EOS, e)
	}
	if v, ok := meta["tokenizer.ggml.add_bos_token"].Int(); ok {
		t.AddBOS = v != 0
	} else if meta["tokenizer.ggml.model"].String == "llama" {
		t.AddBOS = true // llama.cpp's default for SentencePiece vocabularies
	}
	if v, ok := meta["tokenizer.ggml.add_eos_token"].Int(); ok {
		t.AddEOS = v != 0
	}
	t.ChatTemplate = meta["tokenizer.chat_template"].String
	for id, tok := range tokens {
		if len(types) > 0 && (types[id] == typeControl || types[id] == typeUnknown && meta["tokenizer.ggml.model"].String == "llama") {
			t.Special[tok] = id
		}
	}
	return t, nil
}
