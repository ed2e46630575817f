package engine_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/engine/gguf"
	"github.com/mlx-genkit/genkit/mlx"
)

// TestGGUFTypesForward: tiny llama GGUFs quantized by llama.cpp's
// llama-quantize to Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q5_0, Q5_1, Q4_0 and IQ4_XS load
// and give, at every position of a prompt, the logits of an independent
// float64 numpy forward pass over ggml's own dequantization of the same
// file (scripts/reference/make_kquant_refs.py), within 1e-4; Q4_0 and Q4_K
// (loaded as MLX affine 4-bit weights) also with the weights kept quantized. (The per-tensor values are checked bit for bit
// in engine/gguf and mlx.)
func TestGGUFTypesForward(t *testing.T) {
	dir := "testdata/gguf_types"
	b, err := os.ReadFile(filepath.Join(dir, "ggml_dequant.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Prompt []int
		Files  map[string]struct {
			Logits [][]float64
		}
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	var files []string
	for f := range ref.Files {
		files = append(files, f)
	}
	sort.Strings(files)
	if len(files) < 9 {
		t.Fatalf("%d reference files, want 9", len(files))
	}
	for _, f := range files {
		modes := []engine.WeightMode{engine.WeightsDense}
		if f == "tiny_q4_0.gguf" || f == "tiny_q4_k.gguf" {
			modes = append(modes, engine.WeightsQuantized)
		}
		for _, mode := range modes {
			m := load(t, filepath.Join(dir, f), engine.LoadOptions{Weights: mode})
			logits, _ := forward(t, m, ref.Prompt, nil)
			if d := maxAbsDiff(t, logits, ref.Files[f].Logits); d > 1e-4 {
				t.Errorf("%s (weights mode %d): logits differ from the reference by %g", f, mode, d)
			} else {
				t.Logf("%s (weights mode %d): max |logit diff| %.2g", f, mode, d)
			}
		}
	}
}

// TestGGUFUnsupportedTypeRefused: LoadModel refuses a GGUF holding an
// IQ3_S tensor (tiny_q3_k.gguf with token_embd's type patched from Q3_K to
// IQ3_S, the same byte size), naming the tensor, the type and the
// supported types; the unpatched file loads.
func TestGGUFUnsupportedTypeRefused(t *testing.T) {
	src := filepath.Join("testdata/gguf_types", "tiny_q3_k.gguf")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	name := []byte("token_embd.weight")
	i := bytes.Index(data, name)
	if i < 0 {
		t.Fatal("token_embd.weight not in the file")
	}
	at := i + len(name)
	nd := int(binary.LittleEndian.Uint32(data[at:]))
	at += 4 + 8*nd
	if got := binary.LittleEndian.Uint32(data[at:]); got != 11 {
		t.Fatalf("token_embd type %d, want 11 (Q3_K)", got)
	}
	binary.LittleEndian.PutUint32(data[at:], 21) // IQ3_S
	bad := filepath.Join(t.TempDir(), "iq3_s.gguf")
	if err := os.WriteFile(bad, data, 0o644); err != nil {
		t.Fatal(err)
	}
	load(t, src, engine.LoadOptions{})
	err = mlx.Do(context.Background(), func() error {
		m, err := engine.LoadModel(bad, engine.LoadOptions{})
		if err == nil {
			m.Free()
		}
		return err
	})
	if err == nil {
		t.Fatal("an IQ3_S tensor was accepted")
	}
	for _, want := range []string{"token_embd.weight", "IQ3_S (21)", "supported: F32, F16, BF16, Q4_0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

// ropeFreqsFile is the tiny llama3-RoPE model converted by llama.cpp's
// convert_hf_to_gguf.py: the llama3 scaling only as rope_freqs.weight, as in
// Llama 3.1+ GGUFs (scripts/reference/make_rope_freqs_gguf.py).
const ropeFreqsFile = "testdata/hf/llama3_rope/rope_freqs.gguf"

// patchRopeFreqs writes a copy of ropeFreqsFile with its rope_freqs values
// replaced by vals.
func patchRopeFreqs(t *testing.T, vals []float32) string {
	t.Helper()
	h, err := gguf.ReadHeader(ropeFreqsFile)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(ropeFreqsFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range h.Tensors {
		if ti.Name == "rope_freqs.weight" {
			at := h.DataStart + int64(ti.Offset)
			for i, v := range vals {
				binary.LittleEndian.PutUint32(data[at+4*int64(i):], math.Float32bits(v))
			}
		}
	}
	p := filepath.Join(t.TempDir(), "patched.gguf")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestGGUFRopeFreqsMatchesHF: the GGUF carrying rope_freqs gives
// transformers' logits for the HF checkpoint with llama3 RoPE scaling
// (engine/testdata/hf/llama3_rope/reference.json) at every position of
// every prompt; with the factors replaced by ones (plain RoPE) it does not,
// and a zero factor is refused by name.
func TestGGUFRopeFreqsMatchesHF(t *testing.T) {
	var ref tinyRef
	readJSON(t, filepath.Join(hfDir("llama3_rope"), "reference.json"), &ref)
	m := load(t, ropeFreqsFile, engine.LoadOptions{})
	if m.Config.RopeScaling == nil || m.Config.RopeScaling.Type != "rope_freqs" {
		t.Fatalf("rope scaling %+v, want rope_freqs", m.Config.RopeScaling)
	}
	worst := 0.0
	for pi, p := range ref.Prompts {
		logits, _ := forward(t, m, p.Tokens, nil)
		d := maxAbsDiff(t, logits, p.Logits)
		worst = math.Max(worst, d)
		if d > 1e-4 {
			t.Errorf("prompt %d (%d tokens): logits differ from HF by %g", pi, len(p.Tokens), d)
		}
	}
	t.Logf("max |logit diff| vs HF over %d prompts: %.2g", len(ref.Prompts), worst)

	plain := load(t, patchRopeFreqs(t, []float32{1, 1, 1, 1}), engine.LoadOptions{})
	worst = 0
	for _, p := range ref.Prompts {
		logits, _ := forward(t, plain, p.Tokens, nil)
		worst = math.Max(worst, maxAbsDiff(t, logits, p.Logits))
	}
	if worst <= 1e-3 {
		t.Errorf("with unit rope_freqs the logits still match HF (%g): the test cannot see the factors", worst)
	}

	err := mlx.Do(context.Background(), func() error {
		m, err := engine.LoadModel(patchRopeFreqs(t, []float32{0}), engine.LoadOptions{})
		if err == nil {
			m.Free()
		}
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "rope_freqs.weight[0] = 0") {
		t.Errorf("a zero rope_freqs factor: %v", err)
	}
}
