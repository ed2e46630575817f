package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mlx-genkit/genkit/engine/tokenizer"
	"github.com/mlx-genkit/genkit/internal/atomicfile"
	"github.com/mlx-genkit/genkit/mlx"
)

// ConvertOptions control Convert.
type ConvertOptions struct {
	// QBits quantizes matrices and the embedding (4 or 8; 0 keeps them
	// dense).
	QBits int
	// QGroup is the quantization group size (32 or 64).
	QGroup int
	// DType is the dense weights' dtype (default float16).
	DType mlx.Dtype
}

// convert writes a GGUF file or a Hugging Face directory as an MLX-format
// model directory (config.json, tokenizer.json, tokenizer_config.json,
// model.safetensors) that genkit and mlx-lm both load. GGUF llama Q/K rows
// are un-permuted back to Hugging Face's layout. Runs on the MLX thread.
func convert(src, out string, opts ConvertOptions) error {
	if opts.QBits != 0 && opts.QBits != 4 && opts.QBits != 8 {
		return fmt.Errorf("convert: --q-bits must be 4 or 8 (got %d)", opts.QBits)
	}
	if opts.QGroup == 0 {
		opts.QGroup = 64
	}
	if opts.QGroup != 32 && opts.QGroup != 64 {
		return fmt.Errorf("convert: --q-group must be 32 or 64 (got %d)", opts.QGroup)
	}
	if opts.DType == 0 {
		opts.DType = mlx.Float16
	}
	m, err := LoadModel(src, LoadOptions{Weights: WeightsDense, DType: mlx.Float32})
	if err != nil {
		return err
	}
	defer m.Free()
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	s := mlx.NewScope()
	defer s.Close()
	tensors := map[string]*mlx.Array{}
	put := func(name string, w *mlx.Array, quantize bool) {
		if w == nil {
			return
		}
		if quantize && opts.QBits > 0 {
			q, err := mlx.Quantize(w, opts.QGroup, opts.QBits)
			if err != nil {
				s.Fail(fmt.Errorf("quantize %s: %w", name, err))
				return
			}
			s.Track(q.Weight, nil)
			tensors[name+".weight"] = q.Weight
			tensors[name+".scales"] = s.Track(mlx.AsType(q.Scales, opts.DType))
			tensors[name+".biases"] = s.Track(mlx.AsType(q.Biases, opts.DType))
			q.Scales.Free()
			q.Biases.Free()
			// Evaluate each quantized tensor now: all of them at once would
			// hold every one's temporaries together (a 4B model in float32
			// then needs several times its size).
			if err := mlx.Eval(tensors[name+".weight"], tensors[name+".scales"], tensors[name+".biases"]); err != nil {
				s.Fail(fmt.Errorf("quantize %s: %w", name, err))
			}
			return
		}
		tensors[name+".weight"] = s.Track(mlx.AsType(w, opts.DType))
	}
	cfg := *m.Config
	if !m.fusable {
		return fmt.Errorf("convert: %s models cannot be converted yet (llama, qwen2 and qwen3 without sliding windows can)", cfg.Architecture)
	}
	linear := func(name string, l *Linear, heads int) {
		if l == nil {
			return
		}
		w := s.Track(mlx.Transpose(l.wT)) // [out, in]
		if heads > 0 && m.Format == "gguf" && cfg.TraditionalRoPE {
			w = unpermute(s, w, heads)
		}
		put(name, w, true)
		if l.bias != nil {
			tensors[name+".bias"] = s.Track(mlx.AsType(l.bias, opts.DType))
		}
	}
	put("model.embed_tokens", m.embed.w, true)
	tensors["model.norm.weight"] = s.Track(mlx.AsType(m.norm, opts.DType))
	for i, b := range m.layers {
		n := hfNames(m.arch).layer(i)
		tensors[n.attnNorm] = s.Track(mlx.AsType(b.attnNorm, opts.DType))
		tensors[n.ffnNorm] = s.Track(mlx.AsType(b.ffnNorm, opts.DType))
		if b.qNorm != nil {
			tensors[n.qNorm] = s.Track(mlx.AsType(b.qNorm, opts.DType))
			tensors[n.kNorm] = s.Track(mlx.AsType(b.kNorm, opts.DType))
		}
		linear(n.q, b.q, cfg.NumHeads)
		linear(n.k, b.k, cfg.NumKVHeads)
		linear(n.v, b.v, 0)
		linear(n.o, b.o, 0)
		linear(n.gate, b.gate, 0)
		linear(n.up, b.up, 0)
		linear(n.down, b.down, 0)
	}
	if !cfg.TieEmbeddings {
		linear("lm_head", m.lmHead, 0)
	}
	if err := s.Err(); err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	if err := mlx.SaveSafetensors(filepath.Join(out, "model.safetensors"), tensors, map[string]string{"format": "mlx"}); err != nil {
		return err
	}
	if err := writeConfig(out, &cfg, m, opts); err != nil {
		return err
	}
	return writeTokenizer(src, out, m)
}

// unpermute undoes llama.cpp's Q/K row order: within each head, GGUF row 2j
// is HF row j and row 2j+1 is HF row j + head_dim/2.
func unpermute(s *mlx.Scope, w *mlx.Array, heads int) *mlx.Array {
	sh := w.Shape()
	out, in := sh[0], sh[1]
	hd := out / heads
	x := s.Track(mlx.Reshape(w, heads, hd/2, 2, in))
	x = s.Track(mlx.SwapAxes(x, 1, 2))
	return s.Track(mlx.Reshape(s.Track(mlx.Contiguous(x)), out, in))
}

func writeConfig(out string, cfg *Config, m *Model, opts ConvertOptions) error {
	arch, _ := lookupArch(cfg.Architecture)
	c := map[string]any{
		"architectures": []string{arch.Class}, "model_type": cfg.Architecture,
		"hidden_size": cfg.HiddenSize, "intermediate_size": cfg.IntermediateSize, "num_hidden_layers": cfg.NumLayers,
		"num_attention_heads": cfg.NumHeads, "num_key_value_heads": cfg.NumKVHeads, "head_dim": cfg.HeadDim,
		"vocab_size": cfg.VocabSize, "rms_norm_eps": cfg.RMSNormEps, "rope_theta": cfg.RopeTheta,
		"max_position_embeddings": max(cfg.MaxPositions, 2048), "tie_word_embeddings": cfg.TieEmbeddings,
		"attention_bias": cfg.AttentionBias, "mlp_bias": cfg.MLPBias, "hidden_act": "silu",
		"torch_dtype": map[mlx.Dtype]string{mlx.Float16: "float16", mlx.Bfloat16: "bfloat16", mlx.Float32: "float32"}[opts.DType],
	}
	if cfg.RopeScaling != nil && cfg.RopeScaling.Type == "rope_freqs" {
		return fmt.Errorf("convert: per-pair rope_freqs factors (a GGUF rope_freqs.weight tensor) have no config.json form")
	}
	if cfg.RopeScaling != nil {
		c["rope_scaling"] = map[string]any{"rope_type": cfg.RopeScaling.Type, "factor": cfg.RopeScaling.Factor,
			"low_freq_factor": cfg.RopeScaling.LowFreqFactor, "high_freq_factor": cfg.RopeScaling.HighFreqFactor,
			"original_max_position_embeddings": cfg.RopeScaling.OriginalMaxPositionEmbeddings}
	}
	if cfg.BOSTokenID != nil {
		c["bos_token_id"] = *cfg.BOSTokenID
	}
	if len(cfg.EOSTokenIDs) == 1 {
		c["eos_token_id"] = cfg.EOSTokenIDs[0]
	} else if len(cfg.EOSTokenIDs) > 1 {
		c["eos_token_id"] = cfg.EOSTokenIDs
	}
	if opts.QBits > 0 {
		c["quantization"] = map[string]any{"group_size": opts.QGroup, "bits": opts.QBits}
	}
	data, _ := json.MarshalIndent(c, "", "  ")
	return atomicfile.Write(filepath.Join(out, "config.json"), append(data, '\n'), 0o644)
}

func writeTokenizer(src, out string, m *Model) error {
	if m.Tokenizer == nil {
		return nil
	}
	if st, err := os.Stat(src); err == nil && st.IsDir() {
		for _, f := range []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "chat_template.jinja"} {
			if data, err := os.ReadFile(filepath.Join(src, f)); err == nil {
				if err := atomicfile.Write(filepath.Join(out, f), data, 0o644); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if !strings.HasSuffix(strings.ToLower(src), ".gguf") {
		return nil
	}
	_, meta, err := mlx.LoadGGUFMeta(src)
	if err != nil {
		return err
	}
	tj, err := tokenizer.GGUFJSON(meta)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(out, "tokenizer.json"), tj, 0o644); err != nil {
		return err
	}
	tk := m.Tokenizer
	name := func(id int) any {
		if id < 0 {
			return nil
		}
		return tk.Decode([]int{id}, false)
	}
	var eos any
	if len(tk.EOS) > 0 {
		eos = name(tk.EOS[0])
	}
	added := map[string]any{}
	for text, id := range tk.Special {
		added[fmt.Sprint(id)] = map[string]any{"content": text, "special": true, "lstrip": false, "rstrip": false,
			"normalized": false, "single_word": false}
	}
	tc := map[string]any{"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": name(tk.BOS), "eos_token": eos,
		"pad_token": name(tk.Pad), "add_bos_token": tk.AddBOS, "chat_template": tk.ChatTemplate,
		"added_tokens_decoder": added, "model_max_length": 8192, "clean_up_tokenization_spaces": false}
	data, _ := json.MarshalIndent(tc, "", "  ")
	return atomicfile.Write(filepath.Join(out, "tokenizer_config.json"), append(data, '\n'), 0o644)
}

// Convert writes the model at src as an MLX safetensors folder at out
// (quantized as opts say); it enters the MLX thread itself, and ctx cancels
// it while it waits for the thread.
func Convert(ctx context.Context, src, out string, opts ConvertOptions) error {
	return mlx.Do(ctx, func() error { return convert(src, out, opts) })
}
