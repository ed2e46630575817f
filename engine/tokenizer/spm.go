package tokenizer

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"

	"github.com/mlx-genkit/genkit/mlx"
)

// spmJSON renders a GGUF SentencePiece vocabulary (tokenizer.ggml.model =
// llama: tokens, scores, token types) as a Hugging Face tokenizer.json that
// tokenizes as llama.cpp's SPM tokenizer does:
//
//   - llama.cpp replaces spaces with U+2581 and, with add_space_prefix
//     (default true), puts one before every run of text (the start, and
//     after each special token): a normalizer Prepend + Replace does both
//     (HF's Metaspace pre-tokenizer does not prepend to text that already
//     starts with a space, llama.cpp does);
//   - llama.cpp starts from single characters and repeatedly joins the
//     adjacent pair whose concatenation is the vocabulary piece with the
//     highest score: a BPE model whose merges are every split of every
//     piece into two pieces, ranked by the piece's score;
//   - characters left without a piece become their <0xXX> byte tokens
//     (byte_fallback);
//   - control and unknown tokens written in the text are matched whole
//     (added tokens), like llama.cpp with parse_special.
//
// Decoding maps U+2581 back to spaces, joins byte tokens and drops the
// prefix space.
func spmJSON(meta map[string]mlx.MetaValue) ([]byte, error) {
	tokens := meta["tokenizer.ggml.tokens"].Strings
	scores := meta["tokenizer.ggml.scores"].Numbers
	types := meta["tokenizer.ggml.token_type"].Numbers
	if len(tokens) == 0 {
		return nil, fmt.Errorf("GGUF SentencePiece tokenizer: no tokenizer.ggml.tokens")
	}
	if len(scores) != len(tokens) {
		return nil, fmt.Errorf("GGUF SentencePiece tokenizer: %d tokenizer.ggml.scores for %d tokens", len(scores), len(tokens))
	}
	if len(types) != len(tokens) {
		return nil, fmt.Errorf("GGUF SentencePiece tokenizer: %d token types for %d tokens", len(types), len(tokens))
	}
	prefix := true
	if v, ok := meta["tokenizer.ggml.add_space_prefix"].Int(); ok {
		prefix = v != 0
	}
	vocab := make(map[string]int, len(tokens))
	added := []map[string]any{}
	var unk any
	for id, tok := range tokens {
		if _, dup := vocab[tok]; dup {
			return nil, fmt.Errorf("GGUF SentencePiece tokenizer: token %q appears twice (ids %d and %d)", tok, vocab[tok], id)
		}
		if math.IsNaN(scores[id]) {
			return nil, fmt.Errorf("GGUF SentencePiece tokenizer: token %d has a NaN score", id)
		}
		vocab[tok] = id
		switch types[id] {
		case typeUnknown:
			unk = tok
			fallthrough
		case typeControl, typeUserDefined:
			added = append(added, map[string]any{"id": id, "content": tok, "single_word": false,
				"lstrip": false, "rstrip": false, "normalized": false, "special": types[id] != typeUserDefined})
		}
	}
	if unk == nil {
		if id, ok := meta["tokenizer.ggml.unknown_token_id"].Int(); ok && id >= 0 && id < len(tokens) {
			unk = tokens[id]
		}
	}
	type merge struct {
		left, right string
		score       float64
		id, split   int
	}
	var merges []merge
	for id, tok := range tokens {
		if types[id] != typeNormal {
			continue
		}
		r := []rune(tok)
		for k := 1; k < len(r); k++ {
			l, rt := string(r[:k]), string(r[k:])
			if _, ok := vocab[l]; !ok {
				continue
			}
			if _, ok := vocab[rt]; !ok {
				continue
			}
			merges = append(merges, merge{l, rt, scores[id], id, k})
		}
	}
	sort.SliceStable(merges, func(i, j int) bool {
		a, b := merges[i], merges[j]
		if a.score != b.score {
			return a.score > b.score
		}
		if a.id != b.id {
			return a.id < b.id
		}
		return a.split < b.split
	})
	pairs := make([][2]string, len(merges))
	for i, m := range merges {
		pairs[i] = [2]string{m.left, m.right}
	}
	space := map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "\u2581"}
	var normalizer any = space
	decoders := []any{
		map[string]any{"type": "Replace", "pattern": map[string]any{"String": "\u2581"}, "content": " "},
		map[string]any{"type": "ByteFallback"},
		map[string]any{"type": "Fuse"},
	}
	if prefix {
		normalizer = map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "Prepend", "prepend": "\u2581"}, space}}
		decoders = append(decoders, map[string]any{"type": "Strip", "content": " ", "start": 1, "stop": 0})
	}
	spec := map[string]any{
		"version":        "1.0",
		"truncation":     nil,
		"padding":        nil,
		"added_tokens":   added,
		"normalizer":     normalizer,
		"pre_tokenizer":  nil,
		"post_processor": nil,
		"decoder":        map[string]any{"type": "Sequence", "decoders": decoders},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": unk, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
			"vocab": vocab, "merges": pairs},
	}
	return json.Marshal(spec)
}
