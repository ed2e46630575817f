package engine

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
)

// Config is the architecture of a decoder-only model: what its weights mean.
// Field names follow Hugging Face's config.json.
type Config struct {
	Architecture      string  `json:"model_type"` // llama, qwen2, qwen3
	HiddenSize        int     `json:"hidden_size"`
	IntermediateSize  int     `json:"intermediate_size"`
	NumLayers         int     `json:"num_hidden_layers"`
	NumHeads          int     `json:"num_attention_heads"`
	NumKVHeads        int     `json:"num_key_value_heads"`
	HeadDim           int     `json:"head_dim"`
	VocabSize         int     `json:"vocab_size"`
	RMSNormEps        float64 `json:"rms_norm_eps"`
	RopeTheta         float64 `json:"rope_theta"`
	RopeScaling       *RopeScaling
	MaxPositions      int   `json:"max_position_embeddings"`
	TieEmbeddings     bool  `json:"tie_word_embeddings"`
	AttentionBias     bool  `json:"attention_bias"` // q/k/v/o biases (llama flag; qwen2 has q/k/v)
	MLPBias           bool  `json:"mlp_bias"`
	QKNorm            bool  `json:"-"` // qwen3: RMSNorm on q and k per head
	BOSTokenID        *int  `json:"-"`
	EOSTokenIDs       []int `json:"-"`
	PadTokenID        *int  `json:"-"`
	TraditionalRoPE   bool  `json:"-"` // rotate adjacent pairs (GGUF llama keeps Q/K permuted)
	QuantGroupSize    int   `json:"-"` // MLX affine quantization, 0 when unquantized
	QuantBits         int   `json:"-"`
	QuantizationPerOp map[string]QuantSpec

	// HiddenAct is the MLP's gate activation: silu (default) or
	// gelu_pytorch_tanh (gemma's hidden_activation).
	HiddenAct string `json:"hidden_act"`
	// SlidingWindow is how many keys (the query's own included) a
	// sliding-attention layer sees; 0 for none.
	SlidingWindow int `json:"-"`
	// LayerTypes says, per layer, "sliding_attention" or "full_attention";
	// empty means every layer is full (or every layer slides, when only
	// SlidingWindow is set, as in mistral).
	LayerTypes []string `json:"layer_types"`
	// LocalRopeTheta is the RoPE base of sliding layers when it differs
	// from RopeTheta (gemma3); 0 for the same.
	LocalRopeTheta float64 `json:"-"`
	// QueryPreAttnScalar sets the attention scale to its -1/2 power
	// (gemma); 0 for head_dim.
	QueryPreAttnScalar float64 `json:"query_pre_attn_scalar"`
	// AttnSoftcap and FinalSoftcap cap attention scores and logits as
	// cap*tanh(x/cap) (gemma2); 0 for none.
	AttnSoftcap  float64 `json:"-"`
	FinalSoftcap float64 `json:"-"`
	// EmbeddingMultiplier, AttentionMultiplier, ResidualMultiplier and
	// LogitsScaling are granite's scalars (0 when absent).
	EmbeddingMultiplier float64 `json:"embedding_multiplier"`
	AttentionMultiplier float64 `json:"attention_multiplier"`
	ResidualMultiplier  float64 `json:"residual_multiplier"`
	LogitsScaling       float64 `json:"logits_scaling"`
	// PartialRotaryFactor is the share of head_dim that RoPE rotates
	// (phi3 family); 0 means all of it.
	PartialRotaryFactor float64 `json:"partial_rotary_factor"`
	// MoE (qwen3_moe): experts per sparse layer, experts a token uses,
	// each expert's hidden size, whether the chosen experts' weights are
	// renormalised, every how many layers a block is sparse, and layers
	// that stay dense.
	NumExperts          int   `json:"num_experts"`
	NumExpertsPerTok    int   `json:"num_experts_per_tok"`
	MoEIntermediateSize int   `json:"moe_intermediate_size"`
	NormTopKProb        bool  `json:"norm_topk_prob"`
	DecoderSparseStep   int   `json:"decoder_sparse_step"`
	MLPOnlyLayers       []int `json:"mlp_only_layers"`
}

// QuantSpec is the affine quantization of one weight.
type QuantSpec struct {
	GroupSize int `json:"group_size"`
	Bits      int `json:"bits"`
}

// RopeScaling describes RoPE frequency scaling; only "llama3" and "linear"
// change the frequencies, "default" leaves them.
type RopeScaling struct {
	Type                          string  `json:"rope_type"`
	Factor                        float64 `json:"factor"`
	LowFreqFactor                 float64 `json:"low_freq_factor"`
	HighFreqFactor                float64 `json:"high_freq_factor"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings"`
	// FreqFactors, with Type "rope_freqs", divides each rotated pair's
	// frequency (a GGUF rope_freqs.weight tensor, as llama.cpp applies it).
	FreqFactors []float64 `json:"-"`
}

// rawConfig holds the config.json fields whose shape varies across
// transformers versions and checkpoints.
type rawConfig struct {
	Config
	Architectures    []string                   `json:"architectures"`
	RopeScalingRaw   map[string]json.RawMessage `json:"rope_scaling"`
	RopeParameters   map[string]json.RawMessage `json:"rope_parameters"`
	BOS              json.RawMessage            `json:"bos_token_id"`
	EOS              json.RawMessage            `json:"eos_token_id"`
	Pad              json.RawMessage            `json:"pad_token_id"`
	Quantization     map[string]json.RawMessage `json:"quantization"`
	TieRaw           *bool                      `json:"tie_word_embeddings"`
	HiddenActivation string                     `json:"hidden_activation"`
	SlidingRaw       *int                       `json:"sliding_window"`
	UseSliding       *bool                      `json:"use_sliding_window"`
	SlidingPattern   int                        `json:"sliding_window_pattern"`
	RopeLocalBase    float64                    `json:"rope_local_base_freq"`
	AttnSoftcapRaw   *float64                   `json:"attn_logit_softcapping"`
	FinalSoftcapRaw  *float64                   `json:"final_logit_softcapping"`
	NumLocalExperts  int                        `json:"num_local_experts"`
}

// ParseConfig reads a Hugging Face config.json (transformers 4.x keys
// rope_theta/rope_scaling or 5.x rope_parameters; MLX "quantization").
func ParseConfig(data []byte) (*Config, error) {
	var raw rawConfig
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	c := raw.Config
	if c.Architecture == "" && len(raw.Architectures) > 0 {
		c.Architecture = archFromClass(raw.Architectures[0])
	}
	// Rope: 5.x nests theta and scaling in rope_parameters.
	rope := raw.RopeScalingRaw
	if full, ok := raw.RopeParameters["full_attention"]; ok {
		// Per layer type (gemma3 in transformers 5.x): the full layers'
		// parameters are the model's, the sliding layers keep their base.
		var local map[string]json.RawMessage
		if sl, ok := raw.RopeParameters["sliding_attention"]; ok {
			if err := json.Unmarshal(sl, &local); err != nil {
				return nil, fmt.Errorf("config.json: rope_parameters.sliding_attention: %w", err)
			}
			if v, ok := local["rope_theta"]; ok {
				if err := json.Unmarshal(v, &c.LocalRopeTheta); err != nil {
					return nil, fmt.Errorf("config.json: rope_parameters.sliding_attention.rope_theta: %w", err)
				}
			}
		}
		raw.RopeParameters = nil
		if err := json.Unmarshal(full, &raw.RopeParameters); err != nil {
			return nil, fmt.Errorf("config.json: rope_parameters.full_attention: %w", err)
		}
	}
	if c.LocalRopeTheta == 0 {
		c.LocalRopeTheta = raw.RopeLocalBase
	}
	if raw.RopeParameters != nil {
		rope = raw.RopeParameters
		if v, ok := rope["rope_theta"]; ok {
			if err := json.Unmarshal(v, &c.RopeTheta); err != nil {
				return nil, fmt.Errorf("config.json: rope_parameters.rope_theta: %w", err)
			}
		}
	}
	if v, ok := rope["partial_rotary_factor"]; ok && c.PartialRotaryFactor == 0 {
		if err := json.Unmarshal(v, &c.PartialRotaryFactor); err != nil {
			return nil, fmt.Errorf("config.json: partial_rotary_factor: %w", err)
		}
	}
	if rope != nil {
		rs := &RopeScaling{}
		b, _ := json.Marshal(rope)
		if err := json.Unmarshal(b, rs); err != nil {
			return nil, fmt.Errorf("config.json: rope scaling: %w", err)
		}
		if rs.Type == "" {
			if t, ok := rope["type"]; ok {
				_ = json.Unmarshal(t, &rs.Type)
			}
		}
		if rs.Type != "" && rs.Type != "default" {
			c.RopeScaling = rs
		}
	}
	if c.RopeTheta == 0 {
		c.RopeTheta = 10000
	}
	if c.RMSNormEps == 0 {
		c.RMSNormEps = 1e-6
	}
	if c.NumKVHeads == 0 {
		c.NumKVHeads = c.NumHeads
	}
	if c.HeadDim == 0 && c.NumHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumHeads
	}
	if c.HiddenAct == "" {
		c.HiddenAct = raw.HiddenActivation
	}
	if raw.SlidingRaw != nil && (raw.UseSliding == nil || *raw.UseSliding) {
		c.SlidingWindow = *raw.SlidingRaw
	}
	if c.NumExperts == 0 {
		c.NumExperts = raw.NumLocalExperts // transformers 5.x's name
	}
	if raw.AttnSoftcapRaw != nil {
		c.AttnSoftcap = *raw.AttnSoftcapRaw
	}
	if raw.FinalSoftcapRaw != nil {
		c.FinalSoftcap = *raw.FinalSoftcapRaw
	}
	// transformers' default (PretrainedConfig) ties embeddings.
	c.TieEmbeddings = raw.TieRaw == nil || *raw.TieRaw
	var err error
	if c.BOSTokenID, _, err = intOrList(raw.BOS); err != nil {
		return nil, fmt.Errorf("config.json: bos_token_id: %w", err)
	}
	if _, c.EOSTokenIDs, err = intOrList(raw.EOS); err != nil {
		return nil, fmt.Errorf("config.json: eos_token_id: %w", err)
	}
	if c.PadTokenID, _, err = intOrList(raw.Pad); err != nil {
		return nil, fmt.Errorf("config.json: pad_token_id: %w", err)
	}
	if q := raw.Quantization; q != nil {
		var spec QuantSpec
		b, _ := json.Marshal(q)
		_ = json.Unmarshal(b, &spec)
		c.QuantGroupSize, c.QuantBits = spec.GroupSize, spec.Bits
		for k, v := range q {
			var per QuantSpec
			if json.Unmarshal(v, &per) == nil && per.Bits > 0 {
				if c.QuantizationPerOp == nil {
					c.QuantizationPerOp = map[string]QuantSpec{}
				}
				c.QuantizationPerOp[k] = per
			}
		}
	}
	arch, ok := lookupArch(c.Architecture)
	if !ok {
		return nil, fmt.Errorf("config.json: %w", unknownArch(c.Architecture))
	}
	if err := arch.adjust(&c, raw.SlidingPattern); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	return &c, c.Validate()
}

// LoadConfig reads and parses a config.json file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func intOrList(raw json.RawMessage) (*int, []int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, nil
	}
	var one int
	if err := json.Unmarshal(raw, &one); err == nil {
		return &one, []int{one}, nil
	}
	var many []int
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, nil, err
	}
	if len(many) == 0 {
		return nil, nil, nil
	}
	return &many[0], many, nil
}

// Validate checks that the sizes are consistent.
func (c *Config) Validate() error {
	switch {
	case c.HiddenSize <= 0 || c.NumLayers <= 0 || c.NumHeads <= 0 || c.VocabSize <= 0 || c.IntermediateSize <= 0:
		return fmt.Errorf("config: hidden_size, intermediate_size, num_hidden_layers, num_attention_heads and vocab_size must be positive (got %d, %d, %d, %d, %d)",
			c.HiddenSize, c.IntermediateSize, c.NumLayers, c.NumHeads, c.VocabSize)
	case c.NumKVHeads <= 0 || c.NumHeads%c.NumKVHeads != 0:
		return fmt.Errorf("config: num_attention_heads %d is not a multiple of num_key_value_heads %d", c.NumHeads, c.NumKVHeads)
	case c.HeadDim <= 0 || c.HeadDim%2 != 0:
		return fmt.Errorf("config: head_dim %d must be positive and even", c.HeadDim)
	case math.IsNaN(c.RopeTheta) || c.RopeTheta <= 0:
		return fmt.Errorf("config: rope_theta %g must be positive", c.RopeTheta)
	case len(c.LayerTypes) > 0 && len(c.LayerTypes) != c.NumLayers:
		return fmt.Errorf("config: layer_types has %d entries for %d layers", len(c.LayerTypes), c.NumLayers)
	case c.SlidingWindow < 0:
		return fmt.Errorf("config: sliding_window %d must not be negative", c.SlidingWindow)
	case c.PartialRotaryFactor < 0 || c.PartialRotaryFactor > 1:
		return fmt.Errorf("config: partial_rotary_factor %g must be in (0, 1]", c.PartialRotaryFactor)
	case c.RotaryDim()%2 != 0:
		return fmt.Errorf("config: RoPE rotates %d dimensions (partial_rotary_factor %g of head_dim %d); it must be even", c.RotaryDim(), c.PartialRotaryFactor, c.HeadDim)
	case c.AttnSoftcap < 0 || c.FinalSoftcap < 0:
		return fmt.Errorf("config: softcapping must not be negative (attn %g, final %g)", c.AttnSoftcap, c.FinalSoftcap)
	}
	for i, t := range c.LayerTypes {
		if t != "sliding_attention" && t != "full_attention" {
			return fmt.Errorf("config: layer_types[%d] is %q (want sliding_attention or full_attention)", i, t)
		}
	}
	switch c.HiddenAct {
	case "", "silu", "swish", "gelu_pytorch_tanh", "gelu_new", "gelu_fast":
	default:
		return fmt.Errorf("config: hidden activation %q is not supported (silu, gelu_pytorch_tanh)", c.HiddenAct)
	}
	if c.NumExperts > 0 {
		if c.NumExpertsPerTok <= 0 || c.NumExpertsPerTok > c.NumExperts || c.MoEIntermediateSize <= 0 {
			return fmt.Errorf("config: num_experts %d, num_experts_per_tok %d and moe_intermediate_size %d do not describe a mixture of experts",
				c.NumExperts, c.NumExpertsPerTok, c.MoEIntermediateSize)
		}
	}
	return nil
}

// plain reports whether the config's blocks are the standard pre-norm
// SwiGLU ones genkit's fused decode kernels compute: no sliding window, no
// soft-capping, no multipliers, the standard attention scale, full RoPE,
// no experts.
func (c *Config) plain() bool {
	return c.SlidingWindow == 0 && c.AttnSoftcap == 0 && c.FinalSoftcap == 0 &&
		c.EmbeddingMultiplier == 0 && c.AttentionMultiplier == 0 && c.ResidualMultiplier == 0 &&
		(c.LogitsScaling == 0 || c.LogitsScaling == 1) && c.QueryPreAttnScalar == 0 &&
		c.RotaryDim() == c.HeadDim && c.NumExperts == 0 && (c.HiddenAct == "" || c.HiddenAct == "silu") &&
		c.LocalRopeTheta == 0
}

// sparseLayer reports whether layer i's MLP is a mixture of experts:
// qwen3_moe's rule (experts configured, i not in mlp_only_layers, and
// (i+1) a multiple of decoder_sparse_step).
func (c *Config) sparseLayer(i int) bool {
	if c.NumExperts == 0 {
		return false
	}
	for _, d := range c.MLPOnlyLayers {
		if d == i {
			return false
		}
	}
	step := c.DecoderSparseStep
	if step <= 0 {
		step = 1
	}
	return (i+1)%step == 0
}

// RotaryDim is how many dimensions of each head RoPE rotates.
func (c *Config) RotaryDim() int {
	if c.PartialRotaryFactor == 0 || c.PartialRotaryFactor == 1 {
		return c.HeadDim
	}
	return int(float64(c.HeadDim) * c.PartialRotaryFactor)
}

// Sliding reports whether layer i attends through the sliding window.
func (c *Config) Sliding(i int) bool {
	if c.SlidingWindow <= 0 {
		return false
	}
	if len(c.LayerTypes) == 0 {
		return true
	}
	return c.LayerTypes[i] == "sliding_attention"
}

// AttentionScale is the factor applied to q·k: attention_multiplier
// (granite), query_pre_attn_scalar^-1/2 (gemma), else head_dim^-1/2.
func (c *Config) AttentionScale() float32 {
	switch {
	case c.AttentionMultiplier != 0:
		return float32(c.AttentionMultiplier)
	case c.QueryPreAttnScalar != 0:
		return float32(1 / math.Sqrt(c.QueryPreAttnScalar))
	}
	return float32(1 / math.Sqrt(float64(c.HeadDim)))
}

// ParamCount is the number of weights of the model: embeddings, attention
// (with q/k norms when present), each layer's MLP (a sparse layer's router
// and all its experts; see sparseLayer), norms and the output head.
func (c *Config) ParamCount() int64 {
	D, F, hd := int64(c.HiddenSize), int64(c.IntermediateSize), int64(c.HeadDim)
	q, kv := int64(c.NumHeads)*hd, int64(c.NumKVHeads)*hd
	attn := D*(q+2*kv) + q*D + 2*D
	if c.QKNorm {
		if a, ok := lookupArch(c.Architecture); ok && a.QKNormFull {
			attn += q + kv
		} else {
			attn += 2 * hd
		}
	}
	n := int64(c.VocabSize) * D
	if !c.TieEmbeddings {
		n *= 2
	}
	for i := 0; i < c.NumLayers; i++ {
		n += attn
		if c.sparseLayer(i) {
			n += int64(c.NumExperts)*3*D*int64(c.MoEIntermediateSize) + int64(c.NumExperts)*D
		} else {
			n += 3 * D * F
		}
	}
	return n + D
}

// CheckContext is the rule for a run's length, used by every decode: the
// prompt plus the tokens to generate must fit the model's context
// (max_position_embeddings, a GGUF's context_length). A model that states
// no context length is not checked. The error names both numbers, the
// field and the flag that set them.
func (c *Config) CheckContext(promptLen, maxNew int) error {
	if c == nil || c.MaxPositions <= 0 {
		return nil
	}
	if promptLen > c.MaxPositions {
		return fmt.Errorf("the prompt is %d tokens, longer than the model's context of %d tokens (max_position_embeddings): shorten the prompt",
			promptLen, c.MaxPositions)
	}
	if promptLen+maxNew > c.MaxPositions {
		return fmt.Errorf("max_new_tokens (--max-new-tokens) %d plus the prompt's %d tokens is %d, beyond the model's context of %d tokens (max_position_embeddings): at most %d new tokens fit",
			maxNew, promptLen, promptLen+maxNew, c.MaxPositions, c.MaxPositions-promptLen)
	}
	return nil
}
