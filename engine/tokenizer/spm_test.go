package tokenizer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/engine/tokenizer"
	"github.com/mlx-genkit/genkit/mlx"
)

// spmVocab is llama.cpp's models/ggml-vocab-llama-spm.gguf: the LLaMA
// SentencePiece vocabulary (tokenizer.ggml.model = llama), no weights.
const spmVocab = "testdata/ggml-vocab-llama-spm.gguf"

func spmMeta(t *testing.T) map[string]mlx.MetaValue {
	t.Helper()
	var meta map[string]mlx.MetaValue
	err := mlx.Do(context.Background(), func() error {
		arrays, m, err := mlx.LoadGGUF(spmVocab)
		for _, a := range arrays {
			a.Free()
		}
		meta = m
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return meta
}

func spmTokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	tk, err := tokenizer.FromGGUF(spmMeta(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tk.Close() })
	return tk
}

// TestSPMTokenizerMatchesLlamaCpp: the tokenizer built from a GGUF
// SentencePiece vocabulary gives llama.cpp's ids (llama-tokenize --no-bos,
// special tokens parsed; scripts/reference/make_spm_tokenizer_refs.py) for
// every string, and decoding the ids gives the text back (except text
// holding U+2581, which SentencePiece reads as a space, or special tokens,
// after which llama.cpp adds the prefix space).
func TestSPMTokenizerMatchesLlamaCpp(t *testing.T) {
	ref := spmRefs(t)
	if len(ref.Cases) < 300 {
		t.Fatalf("only %d reference strings", len(ref.Cases))
	}
	compareSPM(t, spmTokenizer(t), ref.Cases)
}

type spmCase struct {
	Text string `json:"text"`
	IDs  []int  `json:"ids"`
}

type spmRef struct {
	Cases         []spmCase `json:"cases"`
	NoSpacePrefix []spmCase `json:"no_space_prefix"`
	AddBOSAddEOS  []spmCase `json:"add_bos_add_eos"`
}

func spmRefs(t *testing.T) spmRef {
	t.Helper()
	data, err := os.ReadFile("testdata/llamacpp_llama_spm.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref spmRef
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

func compareSPM(t *testing.T, tk *tokenizer.Tokenizer, cases []spmCase) {
	t.Helper()
	bad := 0
	for _, c := range cases {
		got, err := tk.Encode(c.Text, false)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.IDs) {
			bad++
			if bad <= 10 {
				t.Errorf("%q: genkit %v, llama.cpp %v", c.Text, got, c.IDs)
			}
		}
		if back := tk.Decode(got, false); back != c.Text && !noRoundTrip(c.Text) {
			t.Errorf("%q decodes back as %q", c.Text, back)
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d strings tokenize differently from llama.cpp", bad, len(cases))
	}
}

func noRoundTrip(s string) bool {
	return strings.Contains(s, "<s>") || strings.Contains(s, "</s>") || strings.Contains(s, "<unk>") || strings.Contains(s, "\u2581")
}

// withKey returns a copy of meta with key set to the number v.
func withKey(meta map[string]mlx.MetaValue, key string, v float64) map[string]mlx.MetaValue {
	out := make(map[string]mlx.MetaValue, len(meta)+1)
	for k, x := range meta {
		out[k] = x
	}
	out[key] = mlx.MetaValue{Kind: mlx.MetaNumbers, Numbers: []float64{v}}
	return out
}

// TestSPMMetadataFlags: with tokenizer.ggml.add_space_prefix = false no
// U+2581 is put before the text, and with add_eos_token = true Encode with
// special tokens ends with EOS, as llama.cpp does (the same vocabulary
// with the key set, tokenized by llama-tokenize).
func TestSPMMetadataFlags(t *testing.T) {
	ref := spmRefs(t)
	meta := spmMeta(t)
	if len(ref.NoSpacePrefix) < 40 || len(ref.AddBOSAddEOS) < 3 {
		t.Fatal("reference cases missing")
	}
	tk, err := tokenizer.FromGGUF(withKey(meta, "tokenizer.ggml.add_space_prefix", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	compareSPM(t, tk, ref.NoSpacePrefix)

	tk2, err := tokenizer.FromGGUF(withKey(meta, "tokenizer.ggml.add_eos_token", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer tk2.Close()
	if !tk2.AddBOS || tk2.BOS != 1 || !tk2.AddEOS || len(tk2.EOS) != 1 || tk2.EOS[0] != 2 {
		t.Fatalf("bos %d (add %v) eos %v (add %v)", tk2.BOS, tk2.AddBOS, tk2.EOS, tk2.AddEOS)
	}
	for _, c := range ref.AddBOSAddEOS {
		got, err := tk2.Encode(c.Text, true)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.IDs) {
			t.Errorf("%q with BOS/EOS: genkit %v, llama.cpp %v", c.Text, got, c.IDs)
		}
	}
	if got := tk2.Decode([]int{1, 15043, 3186, 2}, true); got != "Hello world" {
		t.Errorf("decode skipping special tokens: %q", got)
	}
}

// TestSPMMalformedRefused: a SentencePiece vocabulary without scores, with
// a token listed twice or with a NaN score is refused naming the problem.
func TestSPMMalformedRefused(t *testing.T) {
	meta := spmMeta(t)
	if _, err := tokenizer.GGUFJSON(meta); err != nil {
		t.Fatalf("the intact vocabulary: %v", err)
	}
	cp := func() map[string]mlx.MetaValue { return withKey(meta, "x", 0) }
	noScores := cp()
	delete(noScores, "tokenizer.ggml.scores")
	dup := cp()
	toks := append([]string(nil), meta["tokenizer.ggml.tokens"].Strings...)
	toks[100] = toks[200]
	dup["tokenizer.ggml.tokens"] = mlx.MetaValue{Kind: mlx.MetaStrings, Strings: toks}
	nan := cp()
	sc := append([]float64(nil), meta["tokenizer.ggml.scores"].Numbers...)
	sc[7] = math.NaN()
	nan["tokenizer.ggml.scores"] = mlx.MetaValue{Kind: mlx.MetaNumbers, Numbers: sc}
	for name, c := range map[string]struct {
		meta map[string]mlx.MetaValue
		want string
	}{
		"no scores": {noScores, "0 tokenizer.ggml.scores for 32000 tokens"},
		"duplicate": {dup, "appears twice (ids 100 and 200)"},
		"NaN score": {nan, "token 7 has a NaN score"},
	} {
		if _, err := tokenizer.FromGGUF(c.meta); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
