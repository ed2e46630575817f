package engine

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nikolalohinski/gonja/v2"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
)

// Message is one chat turn.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ErrNoChatTemplate is returned by ApplyChatTemplate for a model without one.
var ErrNoChatTemplate = errors.New("the model has no chat template")

// ApplyChatTemplate renders messages with the model's Jinja chat template the
// way transformers does (trim_blocks and lstrip_blocks on), ending with the
// assistant prompt when addGenerationPrompt is set.
func (m *Model) ApplyChatTemplate(messages []Message, addGenerationPrompt bool) (string, error) {
	if m.Tokenizer == nil || m.Tokenizer.ChatTemplate == "" {
		return "", ErrNoChatTemplate
	}
	tk := m.Tokenizer
	special := func(id int) string {
		if id < 0 {
			return ""
		}
		return tk.Decode([]int{id}, false)
	}
	eos := ""
	if len(tk.EOS) > 0 {
		eos = special(tk.EOS[0])
	}
	return RenderChatTemplate(tk.ChatTemplate, messages, addGenerationPrompt, special(tk.BOS), eos)
}

// RenderChatTemplate renders a Jinja chat template.
func RenderChatTemplate(tmpl string, messages []Message, addGenerationPrompt bool, bos, eos string) (string, error) {
	cfg := config.New()
	cfg.TrimBlocks = true
	cfg.LeftStripBlocks = true
	loader, err := loaders.NewFileSystemLoader("")
	if err != nil {
		return "", err
	}
	shifted, err := loaders.NewShiftedLoader("chat_template", strings.NewReader(tmpl), loader)
	if err != nil {
		return "", err
	}
	t, err := exec.NewTemplate("chat_template", cfg, shifted, gonja.DefaultEnvironment)
	if err != nil {
		return "", fmt.Errorf("chat template: %w", err)
	}
	msgs := make([]map[string]any, len(messages))
	for i, m := range messages {
		msgs[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	var raised error
	ctx := exec.NewContext(map[string]any{
		"messages":              msgs,
		"add_generation_prompt": addGenerationPrompt,
		"bos_token":             bos,
		"eos_token":             eos,
		"raise_exception": func(msg string) string {
			raised = errors.New(msg)
			return ""
		},
	})
	out, err := t.ExecuteToString(ctx)
	if raised != nil {
		return "", fmt.Errorf("chat template: %w", raised)
	}
	if err != nil {
		return "", fmt.Errorf("chat template: %w", err)
	}
	return out, nil
}

// Prompt is what a run decodes from: token ids as given, or text wrapped in
// the model's chat template (with an optional system turn) or fed plain.
type Prompt struct {
	// IDs, when set, are the prompt's token ids and the other fields are
	// ignored.
	IDs []int
	// Text is the user's message (chat) or the whole prompt (plain).
	Text string
	// System is the system turn (chat only).
	System string
	// Chat wraps the text in the model's chat template, ending with the
	// assistant's turn.
	Chat bool
}

// EncodePrompt turns p into token ids: the one rule every front end uses.
// A chat prompt for a model without a chat template is fed as plain text,
// the system turn (when there is one) first: "SYSTEM\n\nTEXT\n".
func (m *Model) EncodePrompt(p Prompt) ([]int, error) {
	if len(p.IDs) > 0 {
		for i, id := range p.IDs {
			if id < 0 || id >= m.Config.VocabSize {
				return nil, fmt.Errorf("prompt token %d (position %d) is outside the vocabulary [0, %d)", id, i, m.Config.VocabSize)
			}
		}
		return p.IDs, nil
	}
	if m.Tokenizer == nil {
		return nil, fmt.Errorf("%s has no tokenizer: give the prompt as token ids", m.Source)
	}
	if p.Text == "" {
		return nil, fmt.Errorf("the prompt is empty")
	}
	if !p.Chat {
		return m.Tokenizer.Encode(p.Text, true)
	}
	var msgs []Message
	if p.System != "" {
		msgs = append(msgs, Message{Role: "system", Content: p.System})
	}
	msgs = append(msgs, Message{Role: "user", Content: p.Text})
	text, err := m.ApplyChatTemplate(msgs, true)
	if errors.Is(err, ErrNoChatTemplate) {
		plain := p.Text
		if p.System != "" {
			plain = p.System + "\n\n" + p.Text + "\n"
		}
		return m.Tokenizer.Encode(plain, true)
	}
	if err != nil {
		return nil, fmt.Errorf("chat template: %w", err)
	}
	return m.Tokenizer.Encode(text, false)
}

// DecodeText turns generated ids into text (special tokens skipped); ""
// without a tokenizer.
func (m *Model) DecodeText(ids []int) string {
	if m.Tokenizer == nil {
		return ""
	}
	return m.Tokenizer.Decode(ids, true)
}

// TokenText is one token's text with special tokens shown, for inspecting
// alternatives; "" without a tokenizer.
func (m *Model) TokenText(id int) string {
	if m.Tokenizer == nil {
		return ""
	}
	return m.Tokenizer.Decode([]int{id}, false)
}
