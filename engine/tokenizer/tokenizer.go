// Package tokenizer turns text into token ids and back for genkit's models,
// over Hugging Face's Rust tokenizers library (through
// github.com/daulet/tokenizers). A tokenizer comes from a tokenizer.json or
// is built from a GGUF file's metadata, so a lone .gguf is a complete model.
package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"

	hf "github.com/daulet/tokenizers"
)

// Tokenizer encodes and decodes text for one model.
type Tokenizer struct {
	tk *hf.Tokenizer
	// BOS is the beginning-of-sequence id, or -1.
	BOS int
	// EOS holds every end-of-sequence id (a model may have several).
	EOS []int
	// Pad is the padding id, or -1.
	Pad int
	// AddBOS says whether prompts start with BOS.
	AddBOS bool
	// ChatTemplate is the Jinja chat template, "" when the model has none.
	ChatTemplate string
	// Special maps special token text to id (BOS, EOS, control tokens).
	Special map[string]int
	vocab   int
	tokens  []string // id -> token text as stored (for inspection)
}

// FromJSON builds a tokenizer from the bytes of a tokenizer.json.
//
// A tokenizer.json holding a NUL character in any string (a token, the
// unknown token) is refused: the native library aborts the process when
// it returns such a token.
func FromJSON(data []byte) (*Tokenizer, error) {
	if err := checkNoNUL(data); err != nil {
		return nil, err
	}
	tk, err := hf.FromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	return &Tokenizer{tk: tk, BOS: -1, Pad: -1, vocab: int(tk.VocabSize()), Special: map[string]int{}}, nil
}

// FromFile builds a tokenizer from a tokenizer.json file.
func FromFile(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	t, err := FromJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Close releases the native tokenizer.
func (t *Tokenizer) Close() error {
	if t == nil || t.tk == nil {
		return nil
	}
	err := t.tk.Close()
	t.tk = nil
	return err
}

// VocabSize is the number of ids the tokenizer knows.
func (t *Tokenizer) VocabSize() int { return t.vocab }

// Encode turns text into ids. Special tokens written in the text (such as
// <|im_start|>) become their ids. addBOS prepends BOS when the model wants it.
func (t *Tokenizer) Encode(text string, addBOS bool) ([]int, error) {
	if t == nil || t.tk == nil {
		return nil, errors.New("tokenizer: closed")
	}
	// The native library takes a C string: a NUL would silently end the
	// text there.
	if i := strings.IndexByte(text, 0); i >= 0 {
		return nil, fmt.Errorf("the text holds a NUL byte at byte offset %d, which cannot be tokenized", i)
	}
	ids, _ := t.tk.Encode(text, false)
	out := make([]int, 0, len(ids)+1)
	if addBOS && t.AddBOS && t.BOS >= 0 {
		out = append(out, t.BOS)
	}
	for _, id := range ids {
		out = append(out, int(id))
	}
	return out, nil
}

// Decode turns ids into text; skipSpecial drops special tokens.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) string {
	if t == nil || t.tk == nil || len(ids) == 0 {
		return ""
	}
	u := make([]uint32, len(ids))
	for i, id := range ids {
		u[i] = uint32(id)
	}
	return t.tk.Decode(u, skipSpecial)
}

// IsEOS reports whether id ends a sequence.
func (t *Tokenizer) IsEOS(id int) bool {
	for _, e := range t.EOS {
		if e == id {
			return true
		}
	}
	return false
}

// Token is the stored text of id ("" when unknown).
func (t *Tokenizer) Token(id int) string {
	if id >= 0 && id < len(t.tokens) {
		return t.tokens[id]
	}
	return ""
}

// Stream turns ids into text as they arrive, holding back bytes until they
// form whole UTF-8 characters, so no half character is ever emitted.
type Stream struct {
	t           *Tokenizer
	ids         []int
	emitted     string
	skipSpecial bool
}

// NewStream starts an incremental decoder.
func (t *Tokenizer) NewStream(skipSpecial bool) *Stream {
	return &Stream{t: t, skipSpecial: skipSpecial}
}

// Add appends id and returns the newly completed text (maybe "").
func (s *Stream) Add(id int) string {
	s.ids = append(s.ids, id)
	full := s.t.Decode(s.ids, s.skipSpecial)
	// Hold back a trailing replacement character: the bytes of a character
	// split across tokens decode as U+FFFD until its last byte arrives.
	end := len(full)
	for end > 0 {
		r, size := utf8.DecodeLastRuneInString(full[:end])
		if r != utf8.RuneError || size != 3 && size != 1 {
			break
		}
		end -= size
	}
	full = full[:end]
	if len(full) <= len(s.emitted) || full[:len(s.emitted)] != s.emitted {
		if len(full) > len(s.emitted) {
			// Earlier text changed (rare merges across tokens): emit the tail.
			out := full[commonPrefix(full, s.emitted):]
			s.emitted = full
			return out
		}
		return ""
	}
	out := full[len(s.emitted):]
	s.emitted = full
	return out
}

// Flush returns whatever text is still held back.
func (s *Stream) Flush() string {
	full := s.t.Decode(s.ids, s.skipSpecial)
	if len(full) <= len(s.emitted) {
		return ""
	}
	out := full[commonPrefix(full, s.emitted):]
	s.emitted = full
	return out
}

// Text is everything emitted so far.
func (s *Stream) Text() string { return s.emitted }

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// checkNoNUL refuses JSON that is not valid UTF-8 or whose strings (keys
// or values) hold a NUL character. Malformed JSON is left to the tokenizer library to report.
func checkNoNUL(data []byte) error {
	// JSON is UTF-8; the library panics (aborting the process) on invalid
	// bytes inside some objects (a decoder's keys, say).
	if !utf8.Valid(data) {
		return errors.New("tokenizer.json is not valid UTF-8")
	}
	if !bytes.Contains(data, []byte(`\u0000`)) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		if s, ok := tok.(string); ok && strings.IndexByte(s, 0) >= 0 {
			return fmt.Errorf("tokenizer.json: the string %q holds a NUL character, which the tokenizer library cannot handle", s)
		}
	}
}
