package engine_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
)

// TestShardedHalfPrecision rewrites a tiny model as bf16 and as f16, split
// into two shards with model.safetensors.index.json, and checks the logits
// against HF's fp32 ones within half-precision rounding.
func TestShardedHalfPrecision(t *testing.T) {
	var ref tinyRef
	readJSON(t, filepath.Join(hfDir("qwen2_bias"), "reference.json"), &ref)
	for _, dt := range []mlx.Dtype{mlx.Bfloat16, mlx.Float16} {
		dir := t.TempDir()
		cfg, _ := os.ReadFile(filepath.Join(hfDir("qwen2_bias"), "config.json"))
		os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644)
		err := mlx.Do(context.Background(), func() error {
			arrays, _, err := mlx.LoadSafetensors(filepath.Join(hfDir("qwen2_bias"), "model.safetensors"))
			if err != nil {
				return err
			}
			defer func() {
				for _, a := range arrays {
					a.Free()
				}
			}()
			names := make([]string, 0, len(arrays))
			for n := range arrays {
				names = append(names, n)
			}
			sort.Strings(names)
			shards := []map[string]*mlx.Array{{}, {}}
			weightMap := map[string]string{}
			for i, n := range names {
				c, err := mlx.AsType(arrays[n], dt)
				if err != nil {
					return err
				}
				defer c.Free()
				shards[i%2][n] = c
				weightMap[n] = []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}[i%2]
			}
			for i, sh := range shards {
				name := []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}[i]
				if err := mlx.SaveSafetensors(filepath.Join(dir, name), sh, map[string]string{"format": "pt"}); err != nil {
					return err
				}
			}
			idx, _ := json.Marshal(map[string]any{"weight_map": weightMap})
			return os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), idx, 0o644)
		})

		if err != nil {
			t.Fatal(err)
		}
		m := load(t, dir, engine.LoadOptions{})
		logits, _ := forward(t, m, ref.Prompts[1].Tokens, nil)
		d := maxAbsDiff(t, logits, ref.Prompts[1].Logits)
		t.Logf("%v weights (computed in %v): max |logit - HF fp32| = %.3g", dt, m.DType, d)
		if d > 0.05 {
			t.Fatalf("%v shards: logits differ from HF fp32 by %g", dt, d)
		}
	}
}

// TestHalfPrecisionPaddedBatch runs a left-padded batch (the attention gets
// an array mask) with float16 and bfloat16 compute, as the CLI and the TUI do
// on a GPU by default: the mask must follow the compute dtype, and the logits
// stay within half-precision rounding of HF's fp32 ones.
func TestHalfPrecisionPaddedBatch(t *testing.T) {
	var ref tinyRef
	readJSON(t, filepath.Join(hfDir("llama_tied"), "reference.json"), &ref)
	for _, dt := range []mlx.Dtype{mlx.Float16, mlx.Bfloat16} {
		m := load(t, hfDir("llama_tied"), engine.LoadOptions{DType: dt})
		got := paddedLastLogits(t, m, ref.Padded.Prompts)
		d := maxAbsDiff(t, got, ref.Padded.LastLogits)
		t.Logf("%s compute: left-padded batch, max |logit - HF fp32| = %.4f", dt, d)
		if d > 0.05 {
			t.Errorf("%s compute: padded logits differ from HF by %g", dt, d)
		}
	}
}
