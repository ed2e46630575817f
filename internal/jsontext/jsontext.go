// Package jsontext checks JSON text for the string escapes that Go's
// encoding/json decodes silently into something else: a \u escape of a lone
// UTF-16 surrogate (\ud800 not followed by a low surrogate, or a low
// surrogate alone) encodes no character, and encoding/json turns it into
// U+FFFD (Hugging Face's Rust tokenizer library refuses it, or aborts the
// process). genkit refuses such text, naming the byte offset, wherever JSON
// it reads becomes model input.
package jsontext

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// CheckEscapes returns an error naming the byte offset of the first lone
// surrogate escape in the strings of data, and with refuseNUL of the first
// \u0000, or nil. Data that is not valid JSON is left to the JSON decoder
// to report (nil here).
func CheckEscapes(data []byte, refuseNUL bool) error {
	if !json.Valid(data) {
		return nil
	}
	for i := 0; i < len(data); i++ {
		if data[i] != '"' {
			continue
		}
		end, err := CheckString(data, i, refuseNUL)
		if err != nil {
			return err
		}
		i = end
	}
	return nil
}

// CheckString checks the JSON string that opens with the quote at
// data[start] as CheckEscapes does and returns the offset of its closing
// quote (len(data) when there is none).
func CheckString(data []byte, start int, refuseNUL bool) (int, error) {
	for i := start + 1; i < len(data); i++ {
		switch data[i] {
		case '"':
			return i, nil
		case '\\':
			if i+1 < len(data) && data[i+1] != 'u' {
				i++
				continue
			}
			r, ok := hex4(data, i+2)
			if !ok {
				return len(data), nil // malformed: the decoder reports it
			}
			switch {
			case r == 0 && refuseNUL:
				return 0, fmt.Errorf("a string holds a NUL character (\\u0000) at byte offset %d", i)
			case r >= 0xdc00 && r <= 0xdfff:
				return 0, fmt.Errorf("a string holds a lone UTF-16 low surrogate (\\u%04x) at byte offset %d: it encodes no character", r, i)
			case r >= 0xd800 && r <= 0xdbff:
				if i+7 >= len(data) || data[i+6] != '\\' || data[i+7] != 'u' {
					return 0, fmt.Errorf("a string holds a lone UTF-16 high surrogate (\\u%04x) at byte offset %d: it encodes no character", r, i)
				}
				if lo, ok := hex4(data, i+8); !ok || lo < 0xdc00 || lo > 0xdfff {
					return 0, fmt.Errorf("a string holds a lone UTF-16 high surrogate (\\u%04x) at byte offset %d, followed by \\u%04x instead of a low surrogate", r, i, lo)
				}
				i += 6 // the pair's low half
			}
			i += 5
		}
	}
	return len(data), nil
}

// hex4 reads the four hex digits at data[at:].
func hex4(data []byte, at int) (rune, bool) {
	if at+4 > len(data) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(data[at:at+4]), 16, 32)
	return rune(v), err == nil
}
