package cli

import (
	"fmt"
	"os"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/spf13/pflag"
)

// promptFlags are the flags that make a text prompt: --prompt, --system,
// --chat, --messages FILE (a conversation) and --chat-kwargs JSON.
type promptFlags struct {
	prompt, system, messages, chatKwargs string
	chat                                 bool
	fs                                   *pflag.FlagSet
}

func (f *promptFlags) register(fs *pflag.FlagSet) {
	f.fs = fs
	fs.StringVar(&f.prompt, "prompt", "", "prompt text (with --messages: a last user turn)")
	fs.BoolVar(&f.chat, "chat", false, "wrap the prompt in the model's chat template")
	fs.StringVar(&f.system, "system", "", "system prompt (implies --chat)")
	fs.StringVar(&f.messages, "messages", "", `a conversation to continue: a JSON file of [{"role": "system"|"user"|"assistant", "content": "..."}, ...] ending with a user turn (implies --chat)`)
	fs.StringVar(&f.chatKwargs, "chat-kwargs", "", `chat-template variables as a JSON object, e.g. '{"enable_thinking": false}'`)
}

func (f *promptFlags) changed(name string) bool { return f.fs != nil && f.fs.Changed(name) }

// build overlays the flags the user gave on base (a saved session's prompt,
// or nil) and returns the prompt; engine.EncodePrompt checks the rest.
func (f *promptFlags) build(base *engine.Prompt) (engine.Prompt, error) {
	var p engine.Prompt
	if base != nil {
		p = *base
	}
	if base == nil || f.changed("prompt") {
		p.Text = f.prompt
	}
	if base == nil || f.changed("chat") {
		p.Chat = f.chat
	}
	if base == nil || f.changed("system") {
		p.System = f.system
	}
	if f.messages != "" {
		data, err := os.ReadFile(f.messages)
		if err != nil {
			return p, fmt.Errorf("--messages: %w", err)
		}
		if p.Messages, err = engine.ParseMessages(data); err != nil {
			return p, fmt.Errorf("--messages %s: %w", f.messages, err)
		}
	}
	if f.changed("chat-kwargs") {
		kw, err := engine.ParseChatKwargs([]byte(f.chatKwargs))
		if err != nil {
			return p, fmt.Errorf("--chat-kwargs: %w", err)
		}
		p.ChatKwargs = kw
	}
	if p.System != "" || len(p.Messages) > 0 {
		p.Chat = true
	}
	return p, nil
}

// empty reports whether the prompt has no text to decode.
func (f *promptFlags) empty(p engine.Prompt) bool { return p.Text == "" && len(p.Messages) == 0 }
