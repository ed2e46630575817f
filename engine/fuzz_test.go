package engine_test

import (
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
)

// FuzzParseConfig: any config.json is either refused with an error or
// gives a config that passes its own validation.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":256,"max_position_embeddings":512,"rope_scaling":{"type":"llama3","factor":8}}`))
	f.Add([]byte(`{"architectures":["Qwen3ForCausalLM"],"hidden_size":1e300,"rope_parameters":{"rope_theta":"x"}}`))
	f.Add([]byte(`{"hidden_size":-1,"num_attention_heads":0,"eos_token_id":[1,2,[3]]}`))
	f.Add([]byte(strings.Repeat("[", 10000)))
	f.Add([]byte("{\"model_type\":\"\xff\xfe\"}"))
	f.Add([]byte(`{"hidden_size":64,"num_attention_heads":4,"head_dim":NaN}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := engine.ParseConfig(data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseConfig accepted a config that Validate refuses: %v", err)
		}
	})
}

// FuzzRenderChatTemplate: any template and conversation render or fail
// with an error; none panics. Templates are capped (a chat template is
// a few KiB) so one exec stays cheap.
func FuzzRenderChatTemplate(f *testing.F) {
	chatml := "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
	f.Add(chatml, `[{"role":"user","content":"hi"}]`, `{}`)
	f.Add("{{ raise_exception('no') }}", `[]`, `{"x":1}`)
	f.Add("{% for m in messages %}{{ m.content[::-1] }}{% endfor %}", `[{"role":"user","content":"\u00e9\u0000"}]`, `{"bos_token":"<s>"}`)
	f.Add("{% if %}", `[{"role":"user"}]`, `{"a":[1,2,{"b":null}]}`)
	f.Add(strings.Repeat("{{", 500), "\xff", "{")
	f.Add("{{ messages[99].content }}{{ 1/0 }}", `[{"role":"assistant","content":"x"}]`, `{"n":1e400}`)
	// Nesting past MaxTemplateNesting (100,000 parentheses overflowed the
	// parser's stack, fatally) and lone surrogate escapes are refused.
	f.Add("{{ "+strings.Repeat("(", 1000)+"1"+strings.Repeat(")", 1000)+" }}", `[{"role":"user","content":"\ud800"}]`, `{"x":"\udc00"}`)
	f.Add(strings.Repeat("{% if 1 %}", 150)+"x", `[{"role":"user","content":"\ud83d\ude00"}]`, `{}`)
	f.Fuzz(func(t *testing.T, tmpl, msgs, kwargs string) {
		if len(tmpl) > 4096 || len(msgs) > 4096 || len(kwargs) > 4096 {
			t.Skip()
		}
		var messages []engine.Message
		if m, err := engine.ParseMessages([]byte(msgs)); err == nil {
			messages = m
		}
		kw, err := engine.ParseChatKwargs([]byte(kwargs))
		if err != nil {
			kw = nil
		}
		out, err := engine.RenderChatTemplate(tmpl, messages, engine.ChatOptions{AddGenerationPrompt: true, Kwargs: kw}, "<s>", "</s>")
		if err != nil && out != "" {
			t.Fatalf("a failed render returned text %q with error %v", out, err)
		}
	})
}
