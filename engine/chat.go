package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/mlx-genkit/genkit/internal/jsontext"
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

// Roles a conversation may use (OpenAI-style); a system turn comes first.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// CheckMessages is the rule for a conversation genkit continues: at least
// one turn, roles system, user or assistant, a system turn only first, and
// a user turn last (the model answers it).
func CheckMessages(msgs []Message) error {
	if len(msgs) == 0 {
		return fmt.Errorf("messages: the conversation is empty")
	}
	for i, m := range msgs {
		switch m.Role {
		case RoleSystem:
			if i != 0 {
				return fmt.Errorf("messages[%d]: a system turn may only come first", i)
			}
		case RoleUser, RoleAssistant:
		default:
			return fmt.Errorf("messages[%d]: role %q: want system, user or assistant", i, m.Role)
		}
	}
	if last := msgs[len(msgs)-1]; last.Role != RoleUser {
		return fmt.Errorf("messages[%d]: the conversation ends with a %s turn; end it with a user turn for the model to answer", len(msgs)-1, last.Role)
	}
	return nil
}

// ParseMessages reads a conversation from JSON: a list of {"role",
// "content"} objects, or an object {"messages": [...]} (OpenAI's request
// shape), and checks it with CheckMessages.
//
// A \u escape of a lone UTF-16 surrogate (which encoding/json would turn
// into U+FFFD) is refused naming its byte offset.
func ParseMessages(data []byte) ([]Message, error) {
	if err := jsontext.CheckEscapes(data, false); err != nil {
		return nil, fmt.Errorf("messages: %w", err)
	}
	var msgs []Message
	if err := json.Unmarshal(data, &msgs); err != nil {
		var obj struct {
			Messages []Message `json:"messages"`
		}
		if err2 := json.Unmarshal(data, &obj); err2 != nil || obj.Messages == nil {
			return nil, fmt.Errorf("messages: want a JSON list of {\"role\", \"content\"} objects or {\"messages\": [...]}: %w", err)
		}
		msgs = obj.Messages
	}
	if err := CheckMessages(msgs); err != nil {
		return nil, err
	}
	return msgs, nil
}

// ChatKwargs are extra variables for a chat template, as transformers'
// apply_chat_template(..., **kwargs) passes them (Qwen3's enable_thinking,
// say). Values are kept as JSON text so numbers keep their form through
// sessions: 5 renders as 5 and 5.0 as 5.0, as Python's json.loads reads
// them.
type ChatKwargs map[string]json.RawMessage

// reservedChatKwargs are template variables genkit sets itself (or, for
// tools and documents, does not support).
var reservedChatKwargs = map[string]string{
	"messages":              "the conversation is given with --messages/--prompt",
	"add_generation_prompt": "genkit always opens the assistant's turn",
	"raise_exception":       "it is the template's error function",
	"tools":                 "tool definitions are not supported",
	"documents":             "documents are not supported",
}

// ParseChatKwargs reads chat-template variables from a JSON object and
// checks them with Check.
func ParseChatKwargs(data []byte) (ChatKwargs, error) {
	if err := jsontext.CheckEscapes(data, false); err != nil {
		return nil, fmt.Errorf("chat kwargs: %w", err)
	}
	var kw ChatKwargs
	if err := json.Unmarshal(data, &kw); err != nil || kw == nil {
		if err == nil {
			err = errors.New("null")
		}
		return nil, fmt.Errorf("chat kwargs: want a JSON object such as {\"enable_thinking\": false}: %w", err)
	}
	if err := kw.Check(); err != nil {
		return nil, err
	}
	return kw, nil
}

// Check refuses names genkit sets itself, values that are not JSON and
// values holding a lone UTF-16 surrogate escape.
func (kw ChatKwargs) Check() error {
	for _, k := range sortedKeys(kw) {
		if why, ok := reservedChatKwargs[k]; ok {
			return fmt.Errorf("chat kwargs: %q cannot be set: %s", k, why)
		}
		if _, err := jsonValue(kw[k]); err != nil {
			return fmt.Errorf("chat kwargs: %q: %w", k, err)
		}
		if err := jsontext.CheckEscapes(kw[k], false); err != nil {
			return fmt.Errorf("chat kwargs: %q, in its JSON value: %w", k, err)
		}
	}
	return nil
}

func sortedKeys(kw ChatKwargs) []string {
	keys := make([]string, 0, len(kw))
	for k := range kw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// jsonValue decodes JSON as Python's json.loads does: integers as int,
// other numbers as float64.
func jsonValue(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return pyNumbers(v), nil
}

func pyNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if !strings.ContainsAny(string(x), ".eE") {
			if i, err := x.Int64(); err == nil {
				return int(i)
			}
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = pyNumbers(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = pyNumbers(x[k])
		}
	}
	return v
}

// ChatOptions are the inputs of a chat template besides the messages.
type ChatOptions struct {
	// AddGenerationPrompt ends the text with the assistant's turn opened.
	AddGenerationPrompt bool
	// Kwargs are extra template variables.
	Kwargs ChatKwargs
}

// ApplyChatTemplate renders messages with the model's Jinja chat template the
// way transformers does (trim_blocks and lstrip_blocks on), ending with the
// assistant prompt when addGenerationPrompt is set.
func (m *Model) ApplyChatTemplate(messages []Message, addGenerationPrompt bool) (string, error) {
	return m.RenderChat(messages, ChatOptions{AddGenerationPrompt: addGenerationPrompt})
}

// RenderChat renders messages with the model's chat template and opts.
func (m *Model) RenderChat(messages []Message, opts ChatOptions) (string, error) {
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
	return RenderChatTemplate(tk.ChatTemplate, messages, opts, special(tk.BOS), eos)
}

// RenderChatTemplate renders a Jinja chat template as transformers'
// apply_chat_template does: the messages, add_generation_prompt,
// bos_token and eos_token, then opts.Kwargs (which may override the
// special tokens).
//
// The template engine panics on some inputs ('a' * -1 in a template, say);
// a panic is returned as an error naming the chat template. Templates
// larger than MaxChatTemplateBytes or nesting deeper than
// MaxTemplateNesting are refused before they are parsed.
func RenderChatTemplate(tmpl string, messages []Message, opts ChatOptions, bos, eos string) (out string, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = "", fmt.Errorf("chat template: the template engine failed: %v", r)
		}
	}()
	if err := opts.Kwargs.Check(); err != nil {
		return "", err
	}
	if err := checkTemplate(tmpl); err != nil {
		return "", err
	}
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
	vars := map[string]any{
		"messages":              msgs,
		"add_generation_prompt": opts.AddGenerationPrompt,
		"bos_token":             bos,
		"eos_token":             eos,
		"raise_exception": func(msg string) string {
			raised = errors.New(msg)
			return ""
		},
		"range": boundedRange,
	}
	for k, raw := range opts.Kwargs {
		v, _ := jsonValue(raw) // checked above
		vars[k] = v
	}
	out, err = t.ExecuteToString(exec.NewContext(vars))
	if raised != nil {
		return "", fmt.Errorf("chat template: %w", raised)
	}
	if err != nil {
		return "", fmt.Errorf("chat template: %w", err)
	}
	return out, nil
}

// Prompt is what a run decodes from: token ids as given, or text wrapped in
// the model's chat template (with an optional system turn, or a whole
// conversation) or fed plain.
type Prompt struct {
	// IDs, when set, are the prompt's token ids and the other fields are
	// ignored.
	IDs []int
	// Text is the user's message (chat) or the whole prompt (plain).
	Text string
	// System is the system turn (chat only).
	System string
	// Messages, when set, are a conversation to continue (chat; roles as
	// CheckMessages says): System, when also set, goes first and Text,
	// when also set, is appended as the last user turn.
	Messages []Message
	// Chat wraps the text in the model's chat template, ending with the
	// assistant's turn. Messages imply it.
	Chat bool
	// ChatKwargs are extra chat-template variables (chat only).
	ChatKwargs ChatKwargs
}

// IsChat reports whether the prompt goes through the chat template.
func (p Prompt) IsChat() bool { return p.Chat || len(p.Messages) > 0 }

// Conversation is the list of turns a chat prompt renders: System first,
// then Messages, then Text as a user turn, checked by CheckMessages.
func (p Prompt) Conversation() ([]Message, error) {
	var msgs []Message
	if p.System != "" {
		if len(p.Messages) > 0 && p.Messages[0].Role == RoleSystem {
			return nil, fmt.Errorf("the prompt has a system prompt and a conversation that starts with a system turn: give one")
		}
		msgs = append(msgs, Message{Role: RoleSystem, Content: p.System})
	}
	msgs = append(msgs, p.Messages...)
	if p.Text != "" {
		msgs = append(msgs, Message{Role: RoleUser, Content: p.Text})
	}
	if p.Text == "" && len(p.Messages) == 0 {
		return nil, fmt.Errorf("the prompt is empty")
	}
	if err := CheckMessages(msgs); err != nil {
		return nil, err
	}
	return msgs, nil
}

// EncodePrompt turns p into token ids: the one rule every front end uses.
// The text is PromptText's; it is encoded with special tokens read from
// it, and BOS prepended (when the model wants one) only for plain text.
func (m *Model) EncodePrompt(p Prompt) ([]int, error) {
	if len(p.IDs) > 0 {
		for i, id := range p.IDs {
			if id < 0 || id >= m.Config.VocabSize {
				return nil, fmt.Errorf("prompt token %d (position %d) is outside the vocabulary [0, %d)", id, i, m.Config.VocabSize)
			}
		}
		return p.IDs, nil
	}
	if err := p.checkUTF8(); err != nil {
		return nil, err
	}
	text, addBOS, err := m.PromptText(p)
	if err != nil {
		return nil, err
	}
	return m.Tokenizer.Encode(text, addBOS)
}

// PromptText is the text EncodePrompt tokenizes and whether BOS is added
// to it. A chat prompt is rendered with the chat template (its
// conversation, the assistant's turn opened, ChatKwargs); for a model
// without a chat template a single system + user exchange is fed as plain
// text, "SYSTEM\n\nTEXT\n" (the system turn only when there is one), and
// a longer conversation or chat kwargs are refused.
func (m *Model) PromptText(p Prompt) (text string, addBOS bool, err error) {
	if m.Tokenizer == nil {
		return "", false, fmt.Errorf("%s has no tokenizer: give the prompt as token ids", m.Source)
	}
	if !p.IsChat() {
		if len(p.ChatKwargs) > 0 {
			return "", false, fmt.Errorf("chat kwargs apply to chat prompts: turn the chat template on")
		}
		if p.Text == "" {
			return "", false, fmt.Errorf("the prompt is empty")
		}
		return p.Text, true, nil
	}
	msgs, err := p.Conversation()
	if err != nil {
		return "", false, err
	}
	text, err = m.RenderChat(msgs, ChatOptions{AddGenerationPrompt: true, Kwargs: p.ChatKwargs})
	if errors.Is(err, ErrNoChatTemplate) {
		if len(p.ChatKwargs) > 0 {
			return "", false, fmt.Errorf("chat kwargs: %w", err)
		}
		if len(p.Messages) > 0 {
			return "", false, fmt.Errorf("a conversation (messages) needs a chat template: %w", err)
		}
		plain := p.Text
		if p.System != "" {
			plain = p.System + "\n\n" + p.Text + "\n"
		}
		return plain, true, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("chat template: %w", err)
	}
	return text, false, nil
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

// checkUTF8 refuses a prompt whose text, system prompt or messages are not
// valid UTF-8 (the tokenizer would silently turn the bytes into U+FFFD) or
// hold a NUL byte, naming the field and the byte offset.
func (p Prompt) checkUTF8() error {
	check := func(field, s string) error {
		if i := strings.IndexByte(s, 0); i >= 0 {
			return fmt.Errorf("%s holds a NUL byte at byte offset %d (the tokenizer would drop the rest)", field, i)
		}
		if utf8.ValidString(s) {
			return nil
		}
		for i, r := range s {
			if r == utf8.RuneError {
				if _, size := utf8.DecodeRuneInString(s[i:]); size <= 1 {
					return fmt.Errorf("%s is not valid UTF-8: invalid byte 0x%02x at byte offset %d", field, s[i], i)
				}
			}
		}
		return fmt.Errorf("%s is not valid UTF-8", field)
	}
	if err := check("prompt", p.Text); err != nil {
		return err
	}
	if err := check("system prompt", p.System); err != nil {
		return err
	}
	for i, msg := range p.Messages {
		if err := check(fmt.Sprintf("messages[%d].content", i), msg.Content); err != nil {
			return err
		}
	}
	return nil
}

// MaxChatTemplateBytes is the largest chat template genkit renders. Real
// templates are 1 to 30 KB; the template engine's memory and time grow
// with the template's size (a 3 MB template took 1.2 s and 270 MB a render).
const MaxChatTemplateBytes = 256 << 10

// MaxTemplateNesting is how deeply a chat template may nest brackets inside
// one tag, and blocks ({% if %}, {% for %}, ...) in each other. The template
// engine parses and evaluates nesting by recursion: 30,000 nested
// parentheses took 1 GB of stack, and 100,000 (a 200 KB template) ended the
// process (Go's stack limit is fatal, not a panic). Real templates nest a
// few levels.
const MaxTemplateNesting = 100

// templateBlocks are the tags that open a block closed by an {% end... %}.
var templateBlocks = map[string]bool{"if": true, "for": true, "macro": true, "call": true, "filter": true, "block": true, "with": true, "autoescape": true, "raw": true}

// checkTemplate refuses a chat template larger than MaxChatTemplateBytes or
// nesting deeper than MaxTemplateNesting, naming the byte offset, before
// the template engine sees it. Text outside tags is not looked at; string
// literals and comments inside them are skipped.
func checkTemplate(tmpl string) error {
	if len(tmpl) > MaxChatTemplateBytes {
		return fmt.Errorf("chat template: %d bytes, more than the %d a chat template may have", len(tmpl), MaxChatTemplateBytes)
	}
	blocks := 0
	for i := 0; i+1 < len(tmpl); i++ {
		if tmpl[i] != '{' {
			continue
		}
		var end string
		switch tmpl[i+1] {
		case '{':
			end = "}}"
		case '%':
			end = "%}"
		case '#':
			j := strings.Index(tmpl[i+2:], "#}")
			if j < 0 {
				return nil // unterminated comment: the template engine reports it
			}
			i += j + 3
			continue
		default:
			continue
		}
		start := i
		depth := 0
		var quote byte
		for i += 2; i < len(tmpl); i++ {
			c := tmpl[i]
			if quote != 0 {
				if c == '\\' {
					i++
				} else if c == quote {
					quote = 0
				}
				continue
			}
			if depth == 0 && strings.HasPrefix(tmpl[i:], end) {
				break
			}
			switch c {
			case '\'', '"':
				quote = c
			case '(', '[', '{':
				if depth++; depth > MaxTemplateNesting {
					return fmt.Errorf("chat template: brackets nest more than %d deep at byte offset %d", MaxTemplateNesting, i)
				}
			case ')', ']', '}':
				depth = max(depth-1, 0)
			}
		}
		if end != "%}" {
			continue
		}
		fields := strings.Fields(strings.Trim(tmpl[start+2:min(i, len(tmpl))], "-+"))
		if len(fields) == 0 {
			continue
		}
		switch kw := fields[0]; {
		case templateBlocks[kw] || kw == "set" && !strings.Contains(tmpl[start:min(i, len(tmpl))], "="):
			if blocks++; blocks > MaxTemplateNesting {
				return fmt.Errorf("chat template: blocks nest more than %d deep at byte offset %d ({%% %s %%})", MaxTemplateNesting, start, kw)
			}
		case strings.HasPrefix(kw, "end"):
			blocks = max(blocks-1, 0)
		}
	}
	return nil
}

// MaxTemplateRange is the most items a chat template's range() yields:
// templates loop over messages, and range(10**9) would hang the render.
const MaxTemplateRange = 100000

// boundedRange is Jinja's range([start, ]stop[, step]) for chat templates,
// refusing more than MaxTemplateRange items.
func boundedRange(args ...int) ([]int, error) {
	start, stop, step := 0, 0, 1
	switch len(args) {
	case 1:
		stop = args[0]
	case 2:
		start, stop = args[0], args[1]
	case 3:
		start, stop, step = args[0], args[1], args[2]
	default:
		return nil, fmt.Errorf("range takes 1 to 3 integers, got %d", len(args))
	}
	if step == 0 {
		return nil, errors.New("range step cannot be 0")
	}
	n := 0
	if step > 0 && stop > start {
		n = (stop - start + step - 1) / step
	} else if step < 0 && start > stop {
		n = (start - stop - step - 1) / -step
	}
	if n > MaxTemplateRange || n < 0 {
		return nil, fmt.Errorf("range of %d items: chat templates may loop over at most %d", n, MaxTemplateRange)
	}
	out := make([]int, n)
	for k := range out {
		out[k] = start + k*step
	}
	return out, nil
}
