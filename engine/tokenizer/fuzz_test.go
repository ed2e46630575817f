package tokenizer_test

import (
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
