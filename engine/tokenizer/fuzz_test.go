package tokenizer_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/engine/tokenizer"
)

const tinyBPE = `{"version":"1.0","truncation":null,"padding":null,"added_tokens":[{"id":0,"content":"<|endoftext|>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}],
"normalizer":null,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},"post_processor":null,
"decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},
"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,
"vocab":{"<|endoftext|>":0,"a":1,"b":2,"ab":3,"Ġ":4,"Ġa":5},"merges":["a b","Ġ a"]}}`

const tinyWordLevel = `{"version":"1.0","added_tokens":[],"normalizer":{"type":"Lowercase"},"pre_tokenizer":{"type":"Whitespace"},
"model":{"type":"WordLevel","vocab":{"[UNK]":0,"hello":1,"world":2},"unk_token":"[UNK]"}}`

// FuzzFromJSON: any tokenizer.json is refused with an error or gives a
// tokenizer that encodes and decodes a short text without failing across
// the native boundary. Inputs are capped at 64 KiB to keep execs cheap.
func FuzzFromJSON(f *testing.F) {
	f.Add([]byte(tinyBPE), "ab a\xff<|endoftext|>")
	f.Add([]byte(tinyWordLevel), "Hello world")
	f.Add([]byte(tinyBPE[:len(tinyBPE)/2]), "x")
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":18446744073709551615},"merges":[]}}`), "a")
	f.Add([]byte(`{"model":{"type":"Unigram","vocab":[["a",NaN]]}}`), "a")
	f.Add([]byte(strings.Repeat(`{"model":`, 3000)), "")
	f.Add([]byte("{\"model\":{\"type\":\"WordLevel\",\"vocab\":{\"\xff\":0},\"unk_token\":\"\xff\"}}"), "\xff")
	// JSON errors inside the decoder abort the native library (see
	// TestAbortingJSONIsRefused): a lone surrogate, deep nesting, 1e400.
	dec := `{"model":{"type":"WordLevel","vocab":{"a":0},"unk_token":"a"},"decoder":%s}`
	f.Add([]byte(fmt.Sprintf(dec, `{"type":"Replace","pattern":{"String":"\ud800"},"content":"x"}`)), "a")
	f.Add([]byte(fmt.Sprintf(dec, strings.Repeat("[", 130)+strings.Repeat("]", 130))), "a")
	f.Add([]byte(fmt.Sprintf(dec, "1e400")), "a")
	f.Fuzz(func(t *testing.T, data []byte, text string) {
		if len(data) > 64<<10 || len(text) > 1024 {
			t.Skip()
		}
		tk, err := tokenizer.FromJSON(data)
		if err != nil {
			return
		}
		defer tk.Close()
		ids, err := tk.Encode(text, false)
		if err != nil {
			return
		}
		for _, id := range ids {
			if id < 0 {
				t.Fatalf("Encode gave a negative id %d", id)
			}
		}
		_ = tk.Decode(ids, true)
	})
}

// TestNULIsRefused: a tokenizer.json with a NUL character in a token
// (which made the native library abort the process when it returned that
// token; the fuzzer found it) is refused, as is a text holding a NUL (the
// native library would silently drop what follows it); the same tokenizer
// without the NUL encodes.
func TestNULIsRefused(t *testing.T) {
	bad := `{"model":{"type":"WordLevel","vocab":{"\u0000":0,"a":1},"unk_token":"\u0000"},"pre_tokenizer":{"type":"Whitespace"}}`
	if _, err := tokenizer.FromJSON([]byte(bad)); err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Fatalf("NUL token: %v", err)
	}
	// Invalid UTF-8 in the JSON made the library panic and abort (fuzzer).
	if _, err := tokenizer.FromJSON([]byte(strings.Replace(tinyBPE, `"dropout"`, "\"drop\x8dout\"", 1))); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("invalid UTF-8: %v", err)
	}
	good := strings.ReplaceAll(bad, `\u0000`, "[UNK]")
	tk, err := tokenizer.FromJSON([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	if ids, err := tk.Encode("x a", false); err != nil || len(ids) != 2 || ids[1] != 1 {
		t.Fatalf("good tokenizer: %v, %v", ids, err)
	}
	if _, err := tk.Encode("a\x00b", false); err == nil || !strings.Contains(err.Error(), "byte offset 1") {
		t.Fatalf("NUL in the text: %v", err)
	}
}

// TestAbortingJSONIsRefused: JSON errors inside the decoder section made
// the native library panic ("Helper": the decoder is first parsed with an
// expect on any JSON error), which aborts the process across the C
// boundary; FuzzFromJSON found it with a malformed decoder. The same
// abort followed a lone UTF-16 surrogate escape, nesting past the library's
// 128 levels or a number beyond float64 there. Each is refused before the
// library sees it, naming the byte offset; a surrogate pair and ordinary
// nesting load.
func TestAbortingJSONIsRefused(t *testing.T) {
	withDecoder := func(d string) string {
		return `{"model":{"type":"WordLevel","vocab":{"a":0,"b":1},"unk_token":"a"},"decoder":` + d + `}`
	}
	refused := map[string]struct{ json, want string }{
		"malformed decoder": {withDecoder(`@"type":"ByteLevel"}`), `invalid character '@' looking for beginning of value at byte offset 78`},
		"lone high":         {withDecoder(`{"type":"Replace","pattern":{"String":"\ud800"},"content":"x"}`), `lone UTF-16 high surrogate (\ud800) at byte offset 117`},
		"high then letter":  {withDecoder(`"\ud800\u0041"`), `followed by \u0041 instead of a low surrogate`},
		"lone low":          {withDecoder(`"x\udfff"`), `lone UTF-16 low surrogate (\udfff) at byte offset 80`},
		"deep":              {withDecoder(strings.Repeat("[", 130) + strings.Repeat("]", 130)), `more than 64 levels deep (at byte offset 141)`},
		"huge number":       {withDecoder(`1e400`), `the number 1e400 at byte offset 78 is out of range`},
		"invalid UTF-8":     {withDecoder("\"\xc3\""), `invalid byte 0xc3 at byte offset 79`},
	}
	for name, c := range refused {
		if _, err := tokenizer.FromJSON([]byte(c.json)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", name, err, c.want)
		}
	}
	for name, js := range map[string]string{
		"pair":    strings.Replace(tinyWordLevel, `"world":2`, `"world":2,"\ud83d\ude00":3`, 1),
		"nesting": withDecoder(`{"type":"Sequence","decoders":[{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]}`),
	} {
		tk, err := tokenizer.FromJSON([]byte(js))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		tk.Close()
	}
}
