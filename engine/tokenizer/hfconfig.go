package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mlx-genkit/genkit/internal/jsontext"
)

// tokenizerConfig holds the fields of tokenizer_config.json genkit uses.
type tokenizerConfig struct {
	ChatTemplate json.RawMessage `json:"chat_template"`
	BOSToken     json.RawMessage `json:"bos_token"`
	EOSToken     json.RawMessage `json:"eos_token"`
	PadToken     json.RawMessage `json:"pad_token"`
	AddBOSToken  *bool           `json:"add_bos_token"`
	AddedTokens  map[string]struct {
		Content string `json:"content"`
		Special bool   `json:"special"`
	} `json:"added_tokens_decoder"`
}

// tokenText reads a token given as a string or as {"content": ...}.
func tokenText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var obj struct {
		Content string `json:"content"`
	}
	_ = json.Unmarshal(raw, &obj)
	return obj.Content
}

// FromDir loads tokenizer.json from a model directory together with
// tokenizer_config.json (special tokens, chat template) when present.
// override, when not empty, names a tokenizer.json to use instead.
func FromDir(dir, override string) (*Tokenizer, error) {
	path := filepath.Join(dir, "tokenizer.json")
	if override != "" {
		path = override
	}
	t, err := FromFile(path)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		return t, nil // tokenizer_config.json is optional
	}
	// A lone surrogate escape (in the chat template, say) would become
	// U+FFFD silently.
	if err := jsontext.CheckEscapes(data, false); err != nil {
		t.Close()
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	var cfg tokenizerConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Close()
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	for idStr, tok := range cfg.AddedTokens {
		var id int
		if _, err := fmt.Sscan(idStr, &id); err == nil && tok.Special {
			t.Special[tok.Content] = id
		}
	}
	lookup := func(raw json.RawMessage) int {
		text := tokenText(raw)
		if text == "" {
			return -1
		}
		if id, ok := t.Special[text]; ok {
			return id
		}
		ids, _ := t.Encode(text, false)
		if len(ids) == 1 {
			return ids[0]
		}
		return -1
	}
	t.BOS, t.Pad = lookup(cfg.BOSToken), lookup(cfg.PadToken)
	if e := lookup(cfg.EOSToken); e >= 0 {
		t.EOS = []int{e}
	}
	if cfg.AddBOSToken != nil {
		t.AddBOS = *cfg.AddBOSToken
	}
	var tmpl string
	if json.Unmarshal(cfg.ChatTemplate, &tmpl) != nil {
		// A list of named templates: take "default".
		var named []struct{ Name, Template string }
		if json.Unmarshal(cfg.ChatTemplate, &named) == nil {
			for _, n := range named {
				if n.Name == "default" {
					tmpl = n.Template
				}
			}
		}
	}
	t.ChatTemplate = tmpl
	if tmpl == "" {
		if b, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja")); err == nil {
			t.ChatTemplate = string(b)
		}
	}
	return t, nil
}
