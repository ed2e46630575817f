package engine_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/engine/tokenizer"
)

// qwen3Tokenizer assembles the Qwen3 tokenizer fixture made by
// scripts/reference/make_chat_refs.py (tokenizer.json is stored gzipped).
func qwen3Tokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	src := filepath.Join("testdata", "qwen3_chat")
	gz, err := os.ReadFile(filepath.Join(src, "tokenizer.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join(src, "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	tk, err := tokenizer.FromDir(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tk.Close() })
	return tk
}

// TestQwen3ChatIDsMatchTransformers: for 20 conversations (single and
// multi-turn, with and without reasoning in earlier assistant turns) and
// each of {no kwargs, enable_thinking true, enable_thinking false}, the
// text genkit renders and the ids it feeds equal transformers'. The
// reference differs between enable_thinking false and the others, so the
// kwargs must reach the template for the test to pass.
func TestQwen3ChatIDsMatchTransformers(t *testing.T) {
	var ref struct {
		Cases []struct {
			Messages   []engine.Message  `json:"messages"`
			ChatKwargs engine.ChatKwargs `json:"chat_kwargs"`
			Text       string            `json:"text"`
			IDs        []int             `json:"ids"`
		} `json:"cases"`
	}
	data, err := os.ReadFile(filepath.Join("testdata", "qwen3_chat", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Cases) != 60 {
		t.Fatalf("%d reference cases, want 60", len(ref.Cases))
	}
	m := &engine.Model{Tokenizer: qwen3Tokenizer(t), Source: "qwen3 fixture"}
	thinkingOff := 0
	for i, c := range ref.Cases {
		p := engine.Prompt{Messages: c.Messages, ChatKwargs: c.ChatKwargs}
		text, addBOS, err := m.PromptText(p)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if addBOS || text != c.Text {
			t.Errorf("case %d (%s): rendered\n%q\nwant\n%q", i, c.ChatKwargs, text, c.Text)
			continue
		}
		ids, err := m.EncodePrompt(p)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !equalInts(ids, c.IDs) {
			t.Errorf("case %d: ids\n%v\nwant\n%v", i, ids, c.IDs)
		}
		if strings.HasSuffix(c.Text, "<think>\n\n</think>\n\n") {
			thinkingOff++
		}
	}
	if thinkingOff != 20 {
		t.Fatalf("%d cases end with an empty think block, want the 20 with enable_thinking false", thinkingOff)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCheckMessages(t *testing.T) {
	ok := [][]engine.Message{
		{{Role: "user", Content: "hi"}},
		{{Role: "system", Content: "s"}, {Role: "user", Content: "a"}, {Role: "assistant", Content: "b"}, {Role: "user", Content: "c"}},
	}
	for _, msgs := range ok {
		if err := engine.CheckMessages(msgs); err != nil {
			t.Errorf("%v: %v", msgs, err)
		}
	}
	bad := []struct {
		msgs []engine.Message
		want string
	}{
		{nil, "empty"},
		{[]engine.Message{{Role: "tool", Content: "x"}}, `messages[0]: role "tool"`},
		{[]engine.Message{{Role: "user", Content: "a"}, {Role: "system", Content: "s"}, {Role: "user", Content: "b"}}, "messages[1]: a system turn may only come first"},
		{[]engine.Message{{Role: "user", Content: "a"}, {Role: "assistant", Content: "b"}}, "ends with a assistant turn"},
	}
	for _, c := range bad {
		if err := engine.CheckMessages(c.msgs); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error containing %q", c.msgs, err, c.want)
		}
	}
	if _, err := engine.ParseMessages([]byte(`{"messages": [{"role": "user", "content": "hi"}]}`)); err != nil {
		t.Errorf("OpenAI request shape: %v", err)
	}
	if _, err := engine.ParseMessages([]byte(`[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]`)); err == nil {
		t.Error("a conversation ending with the assistant was accepted")
	}
	if _, err := engine.ParseMessages([]byte(`"hello"`)); err == nil || !strings.Contains(err.Error(), "JSON list") {
		t.Errorf("not a list: %v", err)
	}
}

func TestChatKwargs(t *testing.T) {
	kw, err := engine.ParseChatKwargs([]byte(`{"enable_thinking": false, "n": 5, "x": 5.0, "names": ["a", 2]}`))
	if err != nil {
		t.Fatal(err)
	}
	// Python's json.loads keeps 5 an int and 5.0 a float; so does genkit.
	got, err := engine.RenderChatTemplate("{{ n }} {{ x }} {{ names[1] }}\n{% if enable_thinking is false %}off{% endif %}", nil,
		engine.ChatOptions{Kwargs: kw}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if got != "5 5.0 2\noff" {
		t.Fatalf("rendered %q, want %q", got, "5 5.0 2\noff")
	}
	for _, bad := range []string{`[1]`, `null`, `{"messages": []}`, `{"add_generation_prompt": true}`, `{"tools": []}`, `{"a": }`} {
		if _, err := engine.ParseChatKwargs([]byte(bad)); err == nil {
			t.Errorf("%s was accepted", bad)
		}
	}
}

// TestPromptRules: how a prompt's system turn, conversation and text
// combine, and what a model without a chat template refuses.
func TestPromptRules(t *testing.T) {
	conv := []engine.Message{{Role: "user", Content: "a"}, {Role: "assistant", Content: "b"}}
	got, err := engine.Prompt{System: "s", Messages: conv, Text: "c"}.Conversation()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].Role != "system" || got[3] != (engine.Message{Role: "user", Content: "c"}) {
		t.Fatalf("conversation %v", got)
	}
	if _, err := (engine.Prompt{System: "s", Messages: []engine.Message{{Role: "system", Content: "t"}, {Role: "user", Content: "u"}}}).Conversation(); err == nil {
		t.Fatal("two system turns were accepted")
	}
	if _, err := (engine.Prompt{Messages: conv}).Conversation(); err == nil {
		t.Fatal("a conversation ending with the assistant was accepted")
	}

	m := &engine.Model{Tokenizer: qwen3Tokenizer(t)}
	m.Tokenizer.ChatTemplate = "" // a model without a chat template
	text, addBOS, err := m.PromptText(engine.Prompt{Text: "q", System: "s", Chat: true})
	if err != nil || text != "s\n\nq\n" || !addBOS {
		t.Fatalf("plain fallback: %q %v %v", text, addBOS, err)
	}
	if _, _, err := m.PromptText(engine.Prompt{Messages: append(conv, engine.Message{Role: "user", Content: "c"})}); err == nil || !strings.Contains(err.Error(), "needs a chat template") {
		t.Fatalf("multi-turn without a template: %v", err)
	}
	kw := engine.ChatKwargs{"enable_thinking": json.RawMessage("false")}
	if _, _, err := m.PromptText(engine.Prompt{Text: "q", Chat: true, ChatKwargs: kw}); err == nil {
		t.Fatal("chat kwargs without a template were accepted")
	}
	if _, _, err := m.PromptText(engine.Prompt{Text: "q", ChatKwargs: kw}); err == nil || !strings.Contains(err.Error(), "chat prompts") {
		t.Fatalf("chat kwargs on a plain prompt: %v", err)
	}
}
