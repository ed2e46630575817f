package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// vectorTexts writes a word-level tokenizer for the tiny model and n
// positive and n negative lines, and returns the vector make arguments
// (without --out).
func vectorTexts(t *testing.T, n int) []string {
	t.Helper()
	dir := t.TempDir()
	var vocab []string
	for i := 0; i < 256; i++ {
		vocab = append(vocab, fmt.Sprintf(`"w%d":%d`, i, i))
	}
	var pos, neg strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&pos, "w%d w%d w5\n", i%100, (i+1)%100)
		fmt.Fprintf(&neg, "w%d w%d w6\n", 100+i%100, 100+(i+3)%100)
	}
	files := map[string]string{
		"tokenizer.json": `{"version":"1.0","added_tokens":[],"pre_tokenizer":{"type":"Whitespace"},"model":{"type":"WordLevel","vocab":{` +
			strings.Join(vocab, ",") + `},"unk_token":"w0"}}`,
		"pos.txt": pos.String(),
		"neg.txt": neg.String(),
	}
	for name, s := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"vector", "make", "--model", tiny, "--tokenizer", filepath.Join(dir, "tokenizer.json"),
		"--positive", filepath.Join(dir, "pos.txt"), "--negative", filepath.Join(dir, "neg.txt")}
}

// cancelAfter is a writer that cancels when what was written contains at.
type cancelAfter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	at     string
	cancel func()
}

func (w *cancelAfter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.cancel != nil && strings.Contains(w.buf.String(), w.at) {
		w.cancel()
		w.cancel = nil
	}
	return len(p), nil
}

// TestVectorMakeInterrupted: `vector make` stopped mid-extraction (its
// context cancelled after the first batch's progress) ends the progress
// line with a newline and returns "vector make: interrupted" (not Go's
// "context canceled"), and writes no file.
func TestVectorMakeInterrupted(t *testing.T) {
	args := vectorTexts(t, 40)
	out := filepath.Join(t.TempDir(), "v.safetensors")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &cancelAfter{at: "reading hidden states 8/80", cancel: cancel}
	root := newRoot()
	root.SetOut(io.Discard)
	root.SetErr(stderr)
	root.SetArgs(append(args, "--out", out))
	err := root.ExecuteContext(ctx)
	if err == nil || err.Error() != "vector make: interrupted" || !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want vector make: interrupted", err)
	}
	if got := stderr.buf.String(); got != "\rgenkit: reading hidden states 8/80\n" {
		t.Errorf("stderr %q: want the progress line ended by a newline", got)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a vector was written: %v", err)
	}
}

// TestVectorMakeInterruptExitStatus: SIGINT during `vector make` (through
// Main, as from a shell) exits 130 with the progress line ended and
// "genkit: vector make: interrupted" on a line of its own.
func TestVectorMakeInterruptExitStatus(t *testing.T) {
	args := vectorTexts(t, 400)
	out := filepath.Join(t.TempDir(), "v.safetensors")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	defer func() { os.Stderr = saved }()
	var stderr bytes.Buffer
	done := make(chan struct{})
	go func() { // Main is running (its signal handler installed) while progress shows
		defer close(done)
		buf := make([]byte, 4096)
		sent := false
		for {
			n, err := r.Read(buf)
			stderr.Write(buf[:n])
			if !sent && strings.Contains(stderr.String(), "reading hidden states 8/800") {
				syscall.Kill(os.Getpid(), syscall.SIGINT)
				sent = true
			}
			if err != nil {
				return
			}
		}
	}()
	code := Main(append(args, "--out", out))
	os.Stderr = saved
	w.Close()
	<-done
	r.Close()
	if code != 130 {
		t.Errorf("exit status %d, want 130 (stderr %q)", code, stderr.String())
	}
	if !regexp.MustCompile(`\rgenkit: reading hidden states \d+/800\ngenkit: vector make: interrupted\n$`).MatchString(stderr.String()) {
		t.Errorf("stderr %q: want the progress line ended, then genkit: vector make: interrupted", stderr.String())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a vector was written: %v", err)
	}
}
