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

// TestChatTemplateSizeAndNestingAreBounded: a chat template larger than
// MaxChatTemplateBytes, or nesting brackets or blocks deeper than
// MaxTemplateNesting, is refused at once naming the limit (100,000 nested
// parentheses, a 200 KB template, ended the process with a fatal stack
// overflow in the template engine's parser; 5,000 here took 160 MB). Templates
// at the limits render, and brackets inside strings, comments and plain text
// do not count.
func TestChatTemplateSizeAndNestingAreBounded(t *testing.T) {
	render := func(tmpl string) (string, error) {
		return engine.RenderChatTemplate(tmpl, []engine.Message{{Role: "user", Content: "hi"}}, engine.ChatOptions{}, "", "")
	}
	nest := func(open, mid, close string, n int) string {
		return strings.Repeat(open, n) + mid + strings.Repeat(close, n)
	}
	n := engine.MaxTemplateNesting
	for name, c := range map[string]struct{ tmpl, want string }{
		"parens":   {"{{ " + nest("(", "1", ")", 5000) + " }}", "brackets nest more than 100 deep at byte offset 103"},
		"lists":    {"x{%- set a = " + nest("[", "1", "]", n+1) + " -%}", "brackets nest more than 100 deep at byte offset 113"},
		"ifs":      {nest("{% if 1 %}", "x", "{% endif %}", 5000), "blocks nest more than 100 deep at byte offset 1000 ({% if %})"},
		"set+for":  {nest("{% set s %}{% for m in messages %}", "x", "{% endfor %}{% endset %}", 51), "blocks nest more than 100 deep at byte offset 1700 ({% set %})"},
		"too long": {strings.Repeat("hello {{ messages[0].content }} ", engine.MaxChatTemplateBytes/32+1), "262176 bytes, more than the 262144"},
	} {
		start := time.Now()
		if out, err := render(c.tmpl); err == nil || !strings.Contains(err.Error(), c.want) || out != "" {
			t.Errorf("%s: %q, %v; want an error with %q", name, out, err, c.want)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("%s took %v", name, d)
		}
	}
	for tmpl, want := range map[string]string{
		"{{ " + nest("(", "1", ")", n) + " }}":                                             "1",
		nest("{% if 1 %}", "x", "{% endif %}", n):                                          "x",
		"{# " + nest("(", "", "", 500) + " #}{{ '(((((' }}":                                "(((((",
		strings.Repeat("(", 500) + "{{ messages[0].content }}":                             strings.Repeat("(", 500) + "hi",
		"{{ \"[[[\\\"[[[\" }}{% set x = 1 %}{{ x }}":                                       `[[["[[[1`,
		strings.Repeat("hello {{ messages[0].content }} ", engine.MaxChatTemplateBytes/32): strings.Repeat("hello hi ", engine.MaxChatTemplateBytes/32),
	} {
		if out, err := render(tmpl); err != nil || out != want {
			t.Errorf("%.60s: %.60q, %v", tmpl, out, err)
		}
	}
}

// TestLoneSurrogatesAreRefused: a \u escape of a lone UTF-16 surrogate in a
// --messages file or in chat kwargs (from --chat-kwargs, or a session's,
// through ChatKwargs.Check) is refused naming its byte offset, where
// encoding/json would have turned it into U+FFFD silently; a surrogate pair
// is a character and reads as one.
func TestLoneSurrogatesAreRefused(t *testing.T) {
	if _, err := engine.ParseMessages([]byte(`[{"role":"user","content":"hi \ud800 there"}]`)); err == nil ||
		!strings.Contains(err.Error(), `messages: a string holds a lone UTF-16 high surrogate (\ud800) at byte offset 30`) {
		t.Errorf("messages: %v", err)
	}
	if _, err := engine.ParseChatKwargs([]byte(`{"name": "\udfff"}`)); err == nil ||
		!strings.Contains(err.Error(), `chat kwargs: a string holds a lone UTF-16 low surrogate (\udfff) at byte offset 10`) {
		t.Errorf("chat kwargs: %v", err)
	}
	kw := engine.ChatKwargs{"name": []byte(`"a\ud800b"`)}
	if err := kw.Check(); err == nil || !strings.Contains(err.Error(), `chat kwargs: "name", in its JSON value: a string holds a lone UTF-16 high surrogate (\ud800) at byte offset 2`) {
		t.Errorf("a session's chat kwargs: %v", err)
	}
	msgs, err := engine.ParseMessages([]byte(`{"messages":[{"role":"user","content":"hi \ud83d\ude00"}]}`))
	if err != nil || msgs[0].Content != "hi 😀" {
		t.Errorf("a surrogate pair: %v, %v", msgs, err)
	}
	if kw, err := engine.ParseChatKwargs([]byte(`{"name": "\ud83d\ude00"}`)); err != nil || string(kw["name"]) != `"\ud83d\ude00"` {
		t.Errorf("chat kwargs with a surrogate pair: %v, %v", kw, err)
	}
}
