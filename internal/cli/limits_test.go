package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLimitsNameTheFlag: a non-finite or out-of-range --alpha and a
// --max-new-tokens beyond the model's context (256 for the tiny model) are
// refused naming the flag and the numbers; values inside the limits run.
func TestLimitsNameTheFlag(t *testing.T) {
	vec := filepath.Join(t.TempDir(), "v.npy")
	writeNpy(t, vec, 64)
	steer := []string{"generate", "--model", tiny, "--tokens", "5,6,7", "--greedy", "--steer-vector", vec, "--steer-layer", "1"}
	for _, a := range []string{"nan", "inf", "1e300"} {
		_, err := run(t, append(steer, "--max-new-tokens", "2", "--alpha", a)...)
		if err == nil || !strings.HasPrefix(err.Error(), "--alpha") {
			t.Errorf("--alpha %s: %v", a, err)
		}
	}
	if _, err := run(t, append(steer, "--max-new-tokens", "2", "--alpha", "-3.5")...); err != nil {
		t.Errorf("--alpha -3.5: %v", err)
	}
	_, err := run(t, "generate", "--model", tiny, "--tokens", "5,6,7", "--greedy", "--max-new-tokens", "100000")
	if err == nil || !strings.Contains(err.Error(), "--max-new-tokens") || !strings.Contains(err.Error(), "100000") || !strings.Contains(err.Error(), "256") {
		t.Errorf("--max-new-tokens 100000: %v", err)
	}
	if _, err := run(t, "generate", "--model", tiny, "--tokens", "5,6,7", "--greedy", "--max-new-tokens", "253"); err != nil {
		t.Errorf("3 + 253 tokens in a 256 context: %v", err)
	}
}

// TestVectorMakeRefusesIdenticalSides: `genkit vector make` with the same
// positive and negative texts fails naming the separation and writes no
// file; different texts make the vector.
func TestVectorMakeRefusesIdenticalSides(t *testing.T) {
	dir := t.TempDir()
	var vocab []string
	for i := 0; i < 256; i++ {
		vocab = append(vocab, fmt.Sprintf(`"w%d":%d`, i, i))
	}
	tok := filepath.Join(dir, "tokenizer.json")
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(tok, `{"version":"1.0","added_tokens":[],"pre_tokenizer":{"type":"Whitespace"},"model":{"type":"WordLevel","vocab":{`+
		strings.Join(vocab, ",")+`},"unk_token":"w0"}}`)
	pos, neg, other := filepath.Join(dir, "pos.txt"), filepath.Join(dir, "neg.txt"), filepath.Join(dir, "other.txt")
	write(pos, "w5 w6 w7\nw9 w10\n")
	write(neg, "w5 w6 w7\nw9 w10\n")
	write(other, "w40 w41 w42\nw90 w91\n")
	out := filepath.Join(dir, "v.safetensors")
	_, err := run(t, "vector", "make", "--model", tiny, "--tokenizer", tok, "--positive", pos, "--negative", neg, "--out", out)
	if err == nil || !strings.Contains(err.Error(), "do not separate") || !strings.Contains(err.Error(), "separation") {
		t.Fatalf("identical sides: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a vector was written: %v", err)
	}
	if _, err := run(t, "vector", "make", "--model", tiny, "--tokenizer", tok, "--positive", pos, "--negative", other, "--out", out); err != nil {
		t.Fatalf("different sides: %v", err)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
}
