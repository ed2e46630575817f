package engine_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
)

func loadErr(path string) error {
	return mlx.Do(context.Background(), func() error {
		m, err := engine.LoadModel(path, engine.LoadOptions{})
		if err == nil {
			m.Free()
		}
		return err
	})

}

func copyPrefix(t *testing.T, src, dst string, n int64) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.CopyN(out, in, n); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(dst, 0o755)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBadModelFilesGiveClearErrors(t *testing.T) {
	gguf := defaultModel(t)
	dir := t.TempDir()
	truncated := filepath.Join(dir, "truncated.gguf")
	copyPrefix(t, gguf, truncated, 50<<20)
	headerOnly := filepath.Join(dir, "header.gguf")
	copyPrefix(t, gguf, headerOnly, 1000)
	notGGUF := filepath.Join(dir, "text.gguf")
	os.WriteFile(notGGUF, []byte("this is not a model"), 0o644)

	badShape := filepath.Join(dir, "badshape")
	copyDir(t, hfDir("llama_tied"), badShape)
	cfg, _ := os.ReadFile(filepath.Join(badShape, "config.json"))
	os.WriteFile(filepath.Join(badShape, "config.json"), []byte(strings.Replace(string(cfg), `"intermediate_size": 160`, `"intermediate_size": 128`, 1)), 0o644)

	unknownArch := filepath.Join(dir, "unknown")
	copyDir(t, hfDir("llama_tied"), unknownArch)
	os.WriteFile(filepath.Join(unknownArch, "config.json"), []byte(strings.Replace(string(cfg), `"model_type": "llama"`, `"model_type": "mamba"`, 1)), 0o644)

	noWeights := filepath.Join(dir, "noweights")
	copyDir(t, hfDir("llama_tied"), noWeights)
	os.Remove(filepath.Join(noWeights, "model.safetensors"))

	corruptST := filepath.Join(dir, "corrupt")
	copyDir(t, hfDir("llama_tied"), corruptST)
	copyPrefix(t, filepath.Join(hfDir("llama_tied"), "model.safetensors"), filepath.Join(corruptST, "model.safetensors"), 4096)

	missingTensor := filepath.Join(dir, "missing")
	copyDir(t, hfDir("qwen3_headdim"), missingTensor)
	cfg3, _ := os.ReadFile(filepath.Join(missingTensor, "config.json"))
	os.WriteFile(filepath.Join(missingTensor, "config.json"), []byte(strings.Replace(string(cfg3), `"tie_word_embeddings": true`, `"tie_word_embeddings": false`, 1)), 0o644)

	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		{"missing file", filepath.Join(dir, "nope.gguf"), []string{"nope.gguf"}},
		{"truncated gguf", truncated, []string{"truncated.gguf", "truncated"}},
		{"gguf header only", headerOnly, []string{"header.gguf"}},
		{"not a gguf", notGGUF, []string{"text.gguf", "magic"}},
		{"shape mismatch", badShape, []string{"mlp.gate_proj", "shape"}},
		{"unknown architecture", unknownArch, []string{"mamba", "supported: gemma2, gemma3_text, granite, llama, mistral, olmo2, phi3, qwen2, qwen3, qwen3_moe"}},
		{"no weights", noWeights, []string{"no .safetensors"}},
		{"corrupt safetensors", corruptST, []string{"model.safetensors"}},
		{"untied without lm_head", missingTensor, []string{"lm_head"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := loadErr(tc.path)
			if err == nil {
				t.Fatal("loaded without error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// The process is fine afterwards.
	if err := loadErr(hfDir("llama_tied")); err != nil {
		t.Fatal(err)
	}
}

// TestMLXQuantizedLayout writes a tiny model in the mlx-community layout
// (weight/scales/biases and a "quantization" entry in config.json) and
// checks it against the same weights dequantized.
func TestMLXQuantizedLayout(t *testing.T) {
	dir := t.TempDir()
	src := hfDir("qwen2_bias")
	cfg, _ := os.ReadFile(filepath.Join(src, "config.json"))
	cfgQ := strings.Replace(string(cfg), `"model_type": "qwen2",`, `"model_type": "qwen2", "quantization": {"group_size": 32, "bits": 4},`, 1)
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfgQ), 0o644)
	err := mlx.Do(context.Background(), func() error {
		arrays, _, err := mlx.LoadSafetensors(filepath.Join(src, "model.safetensors"))
		if err != nil {
			return err
		}
		out := map[string]*mlx.Array{}
		var extra []*mlx.Array
		for name, a := range arrays {
			if strings.HasSuffix(name, "proj.weight") || name == "model.embed_tokens.weight" || name == "lm_head.weight" {
				q, err := mlx.Quantize(a, 32, 4)
				if err != nil {
					return err
				}
				p := strings.TrimSuffix(name, ".weight")
				out[p+".weight"], out[p+".scales"], out[p+".biases"] = q.Weight, q.Scales, q.Biases
				extra = append(extra, q.Weight, q.Scales, q.Biases)
			} else {
				out[name] = a
			}
		}
		defer mlx.Free(extra...)
		defer func() {
			for _, a := range arrays {
				a.Free()
			}
		}()
		return mlx.SaveSafetensors(filepath.Join(dir, "model.safetensors"), out, map[string]string{"format": "mlx"})
	})

	if err != nil {
		t.Fatal(err)
	}
	q := load(t, dir, engine.LoadOptions{Weights: engine.WeightsQuantized})
	d := load(t, dir, engine.LoadOptions{Weights: engine.WeightsDense})
	if q.Format != "mlx" || !q.LMHead().Quantized() || d.LMHead().Quantized() {
		t.Fatalf("format %s, quantized head %v / %v", q.Format, q.LMHead().Quantized(), d.LMHead().Quantized())
	}
	ids := []int{3, 14, 15, 92, 65, 35}
	lq, _ := forward(t, q, ids, nil)
	ld, _ := forward(t, d, ids, nil)
	want := make([][]float64, len(ld))
	for i := range ld {
		for _, v := range ld[i] {
			want[i] = append(want[i], float64(v))
		}
	}
	if diff := maxAbsDiff(t, lq, want); diff > 1e-4 {
		t.Fatalf("quantized_matmul vs dequantized weights: %g", diff)
	}
}

func TestHubCacheResolution(t *testing.T) {
	root := t.TempDir()
	t.Setenv("HF_HUB_CACHE", root)
	t.Setenv("HF_HUB_OFFLINE", "1")
	repo := filepath.Join(root, "models--tiny-org--tiny-llama")
	snap := filepath.Join(repo, "snapshots", "0123abcd")
	copyDir(t, hfDir("llama_tied"), snap)
	os.MkdirAll(filepath.Join(repo, "refs"), 0o755)
	os.WriteFile(filepath.Join(repo, "refs", "main"), []byte("0123abcd\n"), 0o644)

	p, err := engine.ResolveModel("tiny-org/tiny-llama", nil)
	if err != nil || p != snap {
		t.Fatalf("resolved %q, %v; want %q", p, err, snap)
	}
	if err := loadErr(p); err != nil {
		t.Fatal(err)
	}
	_, err = engine.ResolveModel("tiny-org/absent-model", nil)
	if err == nil || !strings.Contains(err.Error(), "tiny-org/absent-model") || !strings.Contains(err.Error(), "HF_HUB_OFFLINE") {
		t.Fatalf("offline miss: %v", err)
	}
	if engine.IsHubID("./relative/path") || !engine.IsHubID("HuggingFaceTB/SmolLM2-135M-Instruct") {
		t.Fatal("IsHubID")
	}
}

func TestGenerateCancelsAtNextToken(t *testing.T) {
	m := load(t, hfDir("llama_tied"), engine.LoadOptions{})
	ctx, cancel := contextWithCancel()
	n := 0
	res, _, err := m.Generate(ctx, engine.Request{Prompt: []int{1, 2, 3}, MaxNewTokens: 50, IgnoreEOS: true,
		OnToken: func(_, _ int) {
			n++
			if n == 3 {
				cancel()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res[0].Tokens) != 3 || res[0].Finished != "cancelled" {
		t.Fatalf("%d tokens, finished %q", len(res[0].Tokens), res[0].Finished)
	}
	// A cancelled context no longer enters the MLX thread.
	if _, _, err := m.Generate(ctx, engine.Request{Prompt: []int{1, 2, 3}, MaxNewTokens: 5}); !errors.Is(err, context.Canceled) {
		t.Fatalf("generate with a cancelled context: %v", err)
	}
	// Bad token ids are refused with a clear error.
	if _, _, err := m.Generate(context.Background(), engine.Request{Prompt: []int{9999}}); err == nil || !strings.Contains(err.Error(), "9999") {
		t.Fatalf("out-of-vocabulary id: %v", err)
	}
}
