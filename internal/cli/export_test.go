package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/sessions"
	"github.com/mlx-genkit/genkit/steering"
)

// TestExportCommand: `genkit export --session NAME` writes under the data
// dir, refuses to write over an earlier export, and --force replaces it.
func TestExportCommand(t *testing.T) {
	t.Setenv("GENKIT_DATA_DIR", t.TempDir())
	if err := sessions.Save(&sessions.Session{Name: "cli-export", Prompt: "Hello", Chat: true, Steering: steering.DefaultPlan()}); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "export", "--session", "cli-export")
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := sessions.ExportDir("cli-export")
	if !strings.Contains(out, "exported cli-export") || !strings.Contains(out, filepath.Join(dir, "steering.gguf")) {
		t.Fatalf("output:\n%s", out)
	}
	if _, err := run(t, "export", "--session", "cli-export"); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second export: %v", err)
	}
	if _, err := run(t, "export", "--session", "cli-export", "--force"); err != nil {
		t.Fatalf("--force: %v", err)
	}
	if _, err := run(t, "export"); err == nil || !strings.Contains(err.Error(), "--session") {
		t.Fatalf("no session: %v", err)
	}
}

// TestMessagesAndChatKwargs: --messages feeds a conversation through the
// chat template (the earlier turns appear in the ids), --prompt appends a
// user turn, and bad input is refused with the flag named.
func TestMessagesAndChatKwargs(t *testing.T) {
	dir := t.TempDir()
	conv := filepath.Join(dir, "conv.json")
	os.WriteFile(conv, []byte(`[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a sea."}, {"role": "assistant", "content": "The Baltic."}, {"role": "user", "content": "Another?"}]`), 0o644)
	ids := func(args ...string) []int {
		t.Helper()
		out, err := run(t, append([]string{"tokenize", "--json"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct{ Tokens []int }
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatal(err)
		}
		return doc.Tokens
	}
	single := ids("--prompt", "Another?", "--system", "Be brief.")
	multi := ids("--messages", conv)
	if len(multi) <= len(single)+5 {
		t.Fatalf("the conversation's ids (%d) are not longer than one turn's (%d)", len(multi), len(single))
	}
	if jsonString(multi[len(multi)-8:]) != jsonString(single[len(single)-8:]) {
		t.Fatalf("the conversation does not end like the single turn: %v vs %v", multi[len(multi)-8:], single[len(single)-8:])
	}
	more := ids("--messages", conv, "--prompt", "And a third?")
	if len(more) <= len(multi) {
		t.Fatal("--prompt did not add a user turn")
	}
	// SmolLM2's template takes no variables, so kwargs change nothing there
	// (Qwen3's enable_thinking is tested against transformers in engine).
	if jsonString(ids("--messages", conv, "--chat-kwargs", `{"enable_thinking": false}`)) != jsonString(multi) {
		t.Fatal("an unused template variable changed the ids")
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]`), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--messages", bad}, "--messages"},
		{[]string{"--messages", filepath.Join(dir, "missing.json")}, "--messages"},
		{[]string{"--prompt", "x", "--chat", "--chat-kwargs", `[1]`}, "--chat-kwargs"},
		{[]string{"--prompt", "x", "--chat", "--chat-kwargs", `{"messages": 1}`}, "--chat-kwargs"},
		{[]string{"--prompt", "x", "--chat-kwargs", `{"a": 1}`}, "chat prompts"},
	} {
		if _, err := run(t, append([]string{"tokenize"}, c.args...)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error naming %s", c.args, err, c.want)
		}
	}
}
