package engine

// Gemma 2 and Gemma 3 (text): sandwich blocks (a norm before and after
// each sublayer), RMSNorm scaling by (1 + weight), embeddings times
// sqrt(hidden_size), GELU (tanh) MLPs, attention scaled by
// query_pre_attn_scalar^-1/2 and sliding-window layers between global
// ones. Gemma 2 soft-caps attention scores and logits; Gemma 3 normalises
// q and k per head and gives sliding layers their own RoPE base.
func init() {
	Register(Arch{Name: "gemma2", Class: "Gemma2ForCausalLM", NormPlusOne: true, EmbedScale: true,
		Norms: blockNorms{post: true}, Block: sandwichBlock, Configure: gemmaConfig(2, 0)})
	Register(Arch{Name: "gemma3_text", GGUFName: "gemma3", Class: "Gemma3ForCausalLM", NormPlusOne: true, EmbedScale: true,
		QKNorm: true, Norms: blockNorms{post: true}, Block: sandwichBlock, Configure: gemmaConfig(6, 10000)})
}

// gemmaConfig fills what Gemma configs leave to the family: the activation
// and, when layer_types is absent (older configs), which layers slide:
// all but every pattern-th (gemma2 alternates, gemma3 has five local
// layers per global one), and the sliding layers' RoPE base when the
// config names none (gemma3: 10000).
func gemmaConfig(pattern int, localBase float64) func(c *Config, slidingPattern int) error {
	return func(c *Config, slidingPattern int) error {
		if c.LocalRopeTheta == 0 {
			c.LocalRopeTheta = localBase
		}
		if c.HiddenAct == "" {
			c.HiddenAct = "gelu_pytorch_tanh"
		}
		if slidingPattern > 0 {
			pattern = slidingPattern
		}
		if len(c.LayerTypes) == 0 && c.SlidingWindow > 0 {
			c.LayerTypes = make([]string, c.NumLayers)
			for i := range c.LayerTypes {
				c.LayerTypes[i] = "full_attention"
				if (i+1)%pattern != 0 {
					c.LayerTypes[i] = "sliding_attention"
				}
			}
		}
		if c.QueryPreAttnScalar == 0 {
			c.QueryPreAttnScalar = float64(c.HeadDim)
		}
		return nil
	}
}
