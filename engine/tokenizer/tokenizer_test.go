package tokenizer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/engine/tokenizer"
	"github.com/mlx-genkit/genkit/mlx"
)

func smolTokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	path, err := engine.DefaultModelPath()
	if err != nil {
		t.Fatal(err)
	}
	var tk *tokenizer.Tokenizer
	err = mlx.Do(context.Background(), func() error {
		arrays, meta, err := mlx.LoadGGUF(path)
		if err != nil {
			return err
		}
		for _, a := range arrays {
			a.Free()
		}
		tk, err = tokenizer.FromGGUF(meta)
		return err
	})

	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tk.Close() })
	return tk
}

// TestGGUFTokenizerMatchesLlamaCpp compares ids with llama.cpp's tokenizer
// (recorded from llama-cpp-python by scripts/reference/make_tokenizer_refs.py).
func TestGGUFTokenizerMatchesLlamaCpp(t *testing.T) {
	tk := smolTokenizer(t)
	data, err := os.ReadFile("testdata/llamacpp_smollm2.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Cases []struct {
			Text string `json:"text"`
			IDs  []int  `json:"ids"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Cases) < 200 {
		t.Fatalf("only %d reference strings", len(ref.Cases))
	}
	bad := 0
	for _, c := range ref.Cases {
		got, err := tk.Encode(c.Text, false)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.IDs) {
			bad++
			if bad <= 10 {
				t.Errorf("%q: genkit %v, llama.cpp %v", c.Text, got, c.IDs)
			}
		}
		// Decoding gives the text back (byte-level BPE is lossless).
		if back := tk.Decode(got, false); back != c.Text {
			t.Errorf("%q decodes back as %q", c.Text, back)
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d strings tokenize differently from llama.cpp", bad, len(ref.Cases))
	}
}

func TestSpecialTokensAndIDs(t *testing.T) {
	tk := smolTokenizer(t)
	if tk.BOS != 1 || len(tk.EOS) != 1 || tk.EOS[0] != 2 || tk.Pad != 2 || tk.VocabSize() != 49152 {
		t.Fatalf("bos %d eos %v pad %d vocab %d", tk.BOS, tk.EOS, tk.Pad, tk.VocabSize())
	}
	if tk.AddBOS {
		t.Fatal("SmolLM2's GGUF says add_bos_token = false")
	}
	ids, _ := tk.Encode("<|im_start|>user", false)
	if len(ids) != 2 || ids[0] != 1 {
		t.Fatalf("special token not parsed: %v", ids)
	}
	if got := tk.Decode(ids, true); got != "user" {
		t.Fatalf("skip special: %q", got)
	}
	if !strings.Contains(tk.ChatTemplate, "<|im_start|>") {
		t.Fatal("chat template missing")
	}
}

// TestStreamNeverSplitsCharacters feeds text token by token and checks that
// every emitted piece is whole UTF-8 and that the pieces add up to the text.
func TestStreamNeverSplitsCharacters(t *testing.T) {
	tk := smolTokenizer(t)
	for _, text := range []string{"emoji 😀🎉 done", "日本語のテキスト and 中文", "naïve café ∑∫√", "👍🏽🇫🇷"} {
		ids, _ := tk.Encode(text, false)
		s := tk.NewStream(false)
		var b strings.Builder
		split := false
		for _, id := range ids {
			piece := s.Add(id)
			if !utf8.ValidString(piece) {
				t.Fatalf("%q: emitted invalid UTF-8 %q", text, piece)
			}
			if tk.Decode([]int{id}, false) != piece {
				split = true
			}
			b.WriteString(piece)
		}
		b.WriteString(s.Flush())
		if b.String() != text {
			t.Fatalf("stream gave %q, want %q", b.String(), text)
		}
		if !split && strings.ContainsAny(text, "😀日👍") {
			t.Logf("%q: no character was split across tokens", text)
		}
	}
}

func TestChatTemplate(t *testing.T) {
	tk := smolTokenizer(t)
	// SmolLM2's template, read by hand: a default system turn when the
	// first message is not a system one; each turn as
	// <|im_start|>ROLE\nCONTENT<|im_end|>\n; then the assistant header.
	got, err := engine.RenderChatTemplate(tk.ChatTemplate, []engine.Message{{Role: "user", Content: "Hi"}}, engine.ChatOptions{AddGenerationPrompt: true}, "<|im_start|>", "<|im_end|>")
	if err != nil {
		t.Fatal(err)
	}
	want := "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n" +
		"<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
	if got != want {
		t.Fatalf("rendered %q\nwant     %q", got, want)
	}
	got, err = engine.RenderChatTemplate(tk.ChatTemplate, []engine.Message{{Role: "system", Content: "Be terse."}, {Role: "user", Content: "Hi"}}, engine.ChatOptions{}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if want := "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"; got != want {
		t.Fatalf("rendered %q, want %q", got, want)
	}
	if _, err := engine.RenderChatTemplate("{{ raise_exception('roles must alternate') }}", nil, engine.ChatOptions{AddGenerationPrompt: true}, "", ""); err == nil || !strings.Contains(err.Error(), "roles must alternate") {
		t.Fatalf("raise_exception: %v", err)
	}
}

// TestFromGGUFRefusesOtherModels: tokenizer models other than gpt2 and
// llama (t5's unigram, bert's WordPiece, rwkv, none) are refused naming the
// model and the supported ones.
func TestFromGGUFRefusesOtherModels(t *testing.T) {
	for _, model := range []string{"t5", "bert", "rwkv", ""} {
		_, err := tokenizer.FromGGUF(map[string]mlx.MetaValue{"tokenizer.ggml.model": {Kind: mlx.MetaString, String: model}})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q is not supported", model)) || !strings.Contains(err.Error(), `"llama" SentencePiece`) {
			t.Errorf("tokenizer model %q: %v", model, err)
		}
	}
}

// TestConfigLoneSurrogateIsRefused: a tokenizer_config.json whose chat
// template holds a lone UTF-16 surrogate escape is refused naming the file
// and the byte offset (encoding/json would have put U+FFFD in the
// template); the same file with a surrogate pair loads it as a character.
func TestConfigLoneSurrogateIsRefused(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("tokenizer.json", tinyWordLevel)
	write("tokenizer_config.json", `{"chat_template": "{{ messages[0].content }} \ud800"}`)
	if _, err := tokenizer.FromDir(dir, ""); err == nil || !strings.Contains(err.Error(), `tokenizer_config.json: a string holds a lone UTF-16 high surrogate (\ud800) at byte offset 45`) {
		t.Fatalf("lone surrogate: %v", err)
	}
	write("tokenizer_config.json", `{"chat_template": "{{ messages[0].content }} \ud83d\ude00"}`)
	tk, err := tokenizer.FromDir(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	if tk.ChatTemplate != "{{ messages[0].content }} 😀" {
		t.Fatalf("chat template %q", tk.ChatTemplate)
	}
}
