// Package tokenizer turns text into token ids and back for genkit's models,
// over Hugging Face's Rust tokenizers library (through
// github.com/daulet/tokenizers). A tokenizer comes from a tokenizer.json or
// is built from a GGUF file's metadata, so a lone .gguf is a complete model.
package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	hf "github.com/daulet/tokenizers"
	"github.com/mlx-genkit/genkit/internal/jsontext"
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
	// AddEOS says whether prompts end with EOS (GGUF
	// tokenizer.ggml.add_eos_token; applied where BOS is, see Encode).
	AddEOS bool
	// ChatTemplate is the Jinja chat template, "" when the model has none.
	ChatTemplate string
	// Special maps special token text to id (BOS, EOS, control tokens).
	Special map[string]int
	vocab   int
	tokens  []string // id -> token text as stored (for inspection)
}

// FromJSON builds a tokenizer from the bytes of a tokenizer.json.
//
// A tokenizer.json the native library could abort the process on is
// refused with an error naming the byte offset (see checkJSON): a NUL
// character in any string (the library aborts when it returns such a
// token), a lone UTF-16 surrogate escape, invalid UTF-8, malformed JSON,
// nesting deeper than MaxJSONDepth or a number beyond float64's range.
func FromJSON(data []byte) (*Tokenizer, error) {
	if err := checkJSON(data); err != nil {
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
// <|im_start|>) become their ids. addBOS prepends BOS when the model wants it
// (and appends EOS when the model wants that: GGUF add_eos_token).
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
	if addBOS && t.AddEOS && len(t.EOS) > 0 {
		out = append(out, t.EOS[0])
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

// MaxJSONDepth is how deeply a tokenizer.json may nest arrays and objects.
// Real files nest about 7 levels; the native library's JSON reader stops at
// 128, and inside some objects (the decoder) it aborts the process there
// instead of returning an error.
const MaxJSONDepth = 64

// maxJSONNumber bounds the magnitude of a number in a tokenizer.json. The
// native library's reader refuses numbers beyond a float64 (and aborts the
// process doing so inside the decoder); real files hold ids, lengths and
// log-probabilities.
const maxJSONNumber = 1e300

// checkJSON refuses, naming the byte offset, a tokenizer.json the native
// library would abort the process on rather than refuse: invalid UTF-8,
// malformed JSON, nesting deeper than MaxJSONDepth, a number out of range,
// a string holding a NUL character (\u0000) or a lone UTF-16 surrogate
// escape (\ud800 not followed by a low surrogate, or a low surrogate
// alone). The library parses the decoder section with a helper that
// panics on any JSON error, and a panic cannot cross the C boundary, so
// every such error must be caught here first.
func checkJSON(data []byte) error {
	if !utf8.Valid(data) {
		for i := 0; i < len(data); {
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size <= 1 {
				return fmt.Errorf("tokenizer.json is not valid UTF-8: invalid byte 0x%02x at byte offset %d", data[i], i)
			}
			i += size
		}
	}
	if !json.Valid(data) {
		var raw json.RawMessage
		err := json.Unmarshal(data, &raw)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			// Offset counts the bytes read, the offending one included.
			return fmt.Errorf("tokenizer.json is not valid JSON: %v at byte offset %d", se, max(se.Offset-1, 0))
		}
		return fmt.Errorf("tokenizer.json is not valid JSON: %v", err)
	}
	// data is valid JSON from here on: a byte scan suffices.
	depth := 0
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case c == '{' || c == '[':
			if depth++; depth > MaxJSONDepth {
				return fmt.Errorf("tokenizer.json nests arrays and objects more than %d levels deep (at byte offset %d)", MaxJSONDepth, i)
			}
		case c == '}' || c == ']':
			depth--
		case c == '"':
			end, err := jsontext.CheckString(data, i, true)
			if err != nil {
				return fmt.Errorf("tokenizer.json: %w", err)
			}
			i = end
		case c == '-' || c >= '0' && c <= '9':
			j := i + 1
			for j < len(data) && strings.IndexByte("0123456789+-.eE", data[j]) >= 0 {
				j++
			}
			if f, err := strconv.ParseFloat(string(data[i:j]), 64); err != nil || math.Abs(f) > maxJSONNumber {
				return fmt.Errorf("tokenizer.json: the number %.40s at byte offset %d is out of range (at most %g in magnitude)", data[i:j], i, maxJSONNumber)
			}
			i = j - 1
		}
	}
	return nil
}
