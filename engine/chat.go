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
