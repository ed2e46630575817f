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
	Architectures  []string                   `json:"architectures"`
	RopeScalingRaw map[string]json.RawMessage `json:"rope_scaling"`
	RopeParameters map[string]json.RawMessage `json:"rope_parameters"`
	BOS            json.RawMessage            `json:"bos_token_id"`
	EOS            json.RawMessage            `json:"eos_token_id"`
	Pad            json.RawMessage            `json:"pad_token_id"`
	Quantization   map[string]json.RawMessage `json:"quantization"`
	TieRaw         *bool                      `json:"tie_word_embeddings"`
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
	if raw.RopeParameters != nil {
		rope = raw.RopeParameters
		if v, ok := rope["rope_theta"]; ok {
			if err := json.Unmarshal(v, &c.RopeTheta); err != nil {
				return nil, fmt.Errorf("config.json: rope_parameters.rope_theta: %w", err)
			}
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
		return nil, fmt.Errorf("config.json: unknown architecture %q (supported: %v)", c.Architecture, archNames())
	}
	arch.adjust(&c)
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
	}
	return nil
}

// ParamCount is the number of weights of the model.
func (c *Config) ParamCount() int64 {
	D, F, hd := int64(c.HiddenSize), int64(c.IntermediateSize), int64(c.HeadDim)
	q, kv := int64(c.NumHeads)*hd, int64(c.NumKVHeads)*hd
	perLayer := D*(q+2*kv) + q*D + 3*D*F + 2*D
	emb := int64(c.VocabSize) * D
	if !c.TieEmbeddings {
		emb *= 2
	}
	return emb + int64(c.NumLayers)*perLayer + D
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
