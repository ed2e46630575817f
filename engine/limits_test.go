package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/mlx-genkit/genkit/engine"
)

// TestCheckContext: a run fits when prompt + max_new_tokens <= the context;
// one token more is refused naming both numbers, the field and the flag; a
// prompt alone longer than the context is refused; no context, no check.
func TestCheckContext(t *testing.T) {
	c := &engine.Config{MaxPositions: 256}
	if err := c.CheckContext(10, 246); err != nil {
		t.Fatalf("10 + 246 tokens in a 256 context refused: %v", err)
	}
	err := c.CheckContext(10, 247)
	if err == nil {
		t.Fatal("10 + 247 tokens in a 256 context accepted")
	}
	for _, want := range []string{"247", "10", "256", "max_new_tokens", "--max-new-tokens", "at most 246"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if err := c.CheckContext(257, 0); err == nil || !strings.Contains(err.Error(), "257") || !strings.Contains(err.Error(), "256") {
		t.Errorf("a 257-token prompt in a 256 context: %v", err)
	}
	if err := (&engine.Config{}).CheckContext(1<<20, 1<<20); err != nil {
		t.Errorf("a model without a context length was checked: %v", err)
	}
}

// TestEncodePromptRefusesInvalidUTF8: invalid UTF-8 in the prompt, the
// system prompt or a message is refused naming the field and the byte
// offset; valid text (accents, emoji) encodes.
func TestEncodePromptRefusesInvalidUTF8(t *testing.T) {
	m := load(t, defaultModel(t), engine.LoadOptions{})
	cases := []struct {
		p    engine.Prompt
		want string
	}{
		{engine.Prompt{Text: "caf\xc3 au lait"}, "prompt is not valid UTF-8: invalid byte 0xc3 at byte offset 3"},
		{engine.Prompt{Text: "hi", System: "ok\xff", Chat: true}, "system prompt is not valid UTF-8: invalid byte 0xff at byte offset 2"},
		{engine.Prompt{Messages: []engine.Message{{Role: "user", Content: "a"}, {Role: "assistant", Content: "b"}, {Role: "user", Content: "\x80"}}},
			"messages[2].content is not valid UTF-8: invalid byte 0x80 at byte offset 0"},
		{engine.Prompt{Text: "ab\x00cd"}, "prompt holds a NUL byte at byte offset 2"},
	}
	for _, c := range cases {
		if _, err := m.EncodePrompt(c.p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.p, err, c.want)
		}
	}
	ids, err := m.EncodePrompt(engine.Prompt{Text: "café ☕ 日本", System: "é", Chat: true})
	if err != nil || len(ids) == 0 {
		t.Fatalf("valid UTF-8 refused: %v", err)
	}
}

// TestChatTemplateRangeIsBounded: range() in a chat template yields what
// Jinja's does, and a range beyond MaxTemplateRange (which would hang the
// render) is refused at once, as are wrapping bounds.
func TestChatTemplateRangeIsBounded(t *testing.T) {
	render := func(tmpl string) (string, error) {
		return engine.RenderChatTemplate(tmpl, nil, engine.ChatOptions{}, "", "")
	}
	for tmpl, want := range map[string]string{
		"{% for i in range(3) %}{{ i }}{% endfor %}":        "012",
		"{% for i in range(5, 0, -2) %}{{ i }}{% endfor %}": "531",
		"{% for i in range(2, 9, 3) %}{{ i }}{% endfor %}":  "258",
		"{% for i in range(4, 2) %}{{ i }}{% endfor %}none": "none",
	} {
		if got, err := render(tmpl); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", tmpl, got, err, want)
		}
	}
	for _, tmpl := range []string{"{% for i in range(3000000000) %}{% endfor %}",
		"{% for i in range(-9000000000000000000, 9000000000000000000) %}{% endfor %}",
		"{% for i in range(9223372036854775806, 9223372036854775807, 10) %}{{ i }}{% endfor %}x",
		"{{ range(1, 2, 0) }}"} {
		start := time.Now()
		out, err := render(tmpl)
		if strings.HasSuffix(tmpl, "x") {
			if err != nil || out != "9223372036854775806x" {
				t.Errorf("%s: %q, %v", tmpl, out, err)
			}
			continue
		}
		if err == nil || time.Since(start) > time.Second {
			t.Errorf("%s: accepted or slow (%v): %q", tmpl, time.Since(start), err)
		}
	}
}

// TestChatTemplatePanicsBecomeErrors: template expressions that make the
// template engine panic ('a' * -1, a repeat past the maximum length) are
// refused with an error naming the chat template; a repeat that fits
// renders.
func TestChatTemplatePanicsBecomeErrors(t *testing.T) {
	for _, tmpl := range []string{"{{ 'a' * -1 }}", "{{ 'ab' * 4611686018427387904 }}"} {
		out, err := engine.RenderChatTemplate(tmpl, nil, engine.ChatOptions{}, "", "")
		if err == nil || out != "" || !strings.HasPrefix(err.Error(), "chat template:") {
			t.Errorf("%s: %q, %v", tmpl, out, err)
		}
	}
	if out, err := engine.RenderChatTemplate("{{ 'ab' * 3 }}", nil, engine.ChatOptions{}, "", ""); err != nil || out != "ababab" {
		t.Errorf("'ab' * 3: %q, %v", out, err)
	}
}
