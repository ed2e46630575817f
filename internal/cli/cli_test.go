package cli

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// run executes genkit with args and returns stdout.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

const tiny = "../../engine/testdata/hf/llama_tied"

// TestHeadlessContract checks the JSON shapes scripts rely on, on a tiny
// model whose HF greedy continuation is recorded.
func TestHeadlessContract(t *testing.T) {
	var ref struct {
		Prompts []struct {
			Tokens []int `json:"tokens"`
			Greedy []int `json:"greedy"`
		} `json:"prompts"`
	}
	data, err := os.ReadFile(filepath.Join(tiny, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(data, &ref)
	p := ref.Prompts[1]
	ids := strings.Trim(jsonString(p.Tokens), "[]")
	out, err := run(t, "generate", "--model", tiny, "--tokens", ids, "--max-new-tokens", "12", "--greedy", "--ignore-eos", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var gen struct {
		Base struct {
			Tokens []int  `json:"tokens"`
			Text   string `json:"text"`
		} `json:"base"`
	}
	if err := json.Unmarshal([]byte(out), &gen); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if jsonString(gen.Base.Tokens) != jsonString(p.Greedy) {
		t.Fatalf("generate --json tokens %v, HF greedy %v", gen.Base.Tokens, p.Greedy)
	}
	out, err = run(t, "logits", "--model", tiny, "--tokens", ids, "--all-positions", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var lg struct {
		Logits [][]float64 `json:"logits"`
	}
	if err := json.Unmarshal([]byte(out), &lg); err != nil || len(lg.Logits) != len(p.Tokens) || len(lg.Logits[0]) != 256 {
		t.Fatalf("logits: %v, %d rows", err, len(lg.Logits))
	}
	cfg := filepath.Join(t.TempDir(), "gc.json")
	os.WriteFile(cfg, []byte(`{"do_sample": true, "top_k": 3}`), 0o644)
	out, err = run(t, "logits", "--model", tiny, "--tokens", ids, "--processed", "--config", cfg, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Probs []float64 `json:"probs"`
	}
	json.Unmarshal([]byte(out), &pr)
	nonzero, sum := 0, 0.0
	for _, v := range pr.Probs {
		if v > 0 {
			nonzero++
		}
		sum += v
	}
	if len(pr.Probs) != 256 || nonzero != 3 || sum < 0.999999 || sum > 1.000001 {
		t.Fatalf("processed probs: %d values, %d nonzero, sum %g", len(pr.Probs), nonzero, sum)
	}
	// Steering: a vector file on layer 1; the base lane stays the HF greedy one.
	vec := filepath.Join(t.TempDir(), "v.npy")
	writeNpy(t, vec, 64)
	out, err = run(t, "generate", "--model", tiny, "--tokens", ids, "--max-new-tokens", "12", "--greedy", "--ignore-eos",
		"--steer-vector", vec, "--steer-layer", "1", "--alpha", "4", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Base    struct{ Tokens []int } `json:"base"`
		Steered struct{ Tokens []int } `json:"steered"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if jsonString(st.Base.Tokens) != jsonString(p.Greedy) || len(st.Steered.Tokens) != 12 || jsonString(st.Steered.Tokens) == jsonString(p.Greedy) {
		t.Fatalf("steered run: base %v, steered %v (HF greedy %v)", st.Base.Tokens, st.Steered.Tokens, p.Greedy)
	}
	// Bad input is an error naming the problem.
	if _, err := run(t, "generate", "--model", tiny, "--tokens", "1,x"); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Fatalf("bad token: %v", err)
	}
	if _, err := run(t, "generate", "--model", tiny, "--tokens", "1", "--steer-vector", vec, "--steer-layer", "9"); err == nil || !strings.Contains(err.Error(), "layer 9") {
		t.Fatalf("bad layer: %v", err)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// writeNpy writes a float32 vector 0.1*(i%5-2) as .npy (format 1.0).
func writeNpy(t *testing.T, path string, n int) {
	header := "{'descr': '<f4', 'fortran_order': False, 'shape': (" + strconv.Itoa(n) + ",), }"
	for (10+len(header)+1)%64 != 0 {
		header += " "
	}
	header += "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	b.WriteByte(byte(len(header)))
	b.WriteByte(byte(len(header) >> 8))
	b.WriteString(header)
	for i := 0; i < n; i++ {
		v := float32(0.1 * float64(i%5-2))
		bits := math.Float32bits(v)
		b.Write([]byte{byte(bits), byte(bits >> 8), byte(bits >> 16), byte(bits >> 24)})
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDeviceFlag: a bad --device or GENKIT_DEVICE is refused naming the
// choices; version names the MLX version, the backend and the device.
func TestDeviceFlag(t *testing.T) {
	if _, err := run(t, "--device", "bogus", "version"); err == nil || !strings.Contains(err.Error(), `--device "bogus": want auto, gpu or cpu`) {
		t.Errorf("--device bogus: %v", err)
	}
	t.Setenv("GENKIT_DEVICE", "tpu")
	if _, err := run(t, "version"); err == nil || !strings.Contains(err.Error(), "GENKIT_DEVICE") {
		t.Errorf("GENKIT_DEVICE=tpu: %v", err)
	}
	t.Setenv("GENKIT_DEVICE", "")
	out, err := run(t, "--device", "cpu", "version")
	if err != nil || !strings.Contains(out, "MLX 0.32.4") || !strings.Contains(out, "backend ") || !strings.Contains(out, "device: cpu") {
		t.Errorf("version on the CPU: %q, %v", out, err)
	}
	if _, err := run(t, "version"); err != nil { // back to auto for the other tests
		t.Fatal(err)
	}
}

// TestInterruptExitStatus: SIGINT stops `genkit generate` mid-decode with
// status 130 (and SIGTERM with 143), promptly, as shells expect.
func TestInterruptExitStatus(t *testing.T) {
	bin, _ := filepath.Abs(filepath.Join("..", "..", "bin", "genkit"))
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `make build` (make test does)", bin)
	}
	for _, c := range []struct {
		sig  syscall.Signal
		want int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		// The default model (GENKIT_DEFAULT_MODEL, set by make), long enough
		// to be mid-decode when the signal comes.
		cmd := exec.Command(bin, "generate", "--prompt", "Write a very long story about the sea.", "--chat",
			"--max-new-tokens", "4000", "--ignore-eos")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Signal once tokens stream (mid-decode): a fixed sleep could land in
		// the model load or, on a GPU with a cold kernel cache, in minutes of
		// kernel compilation, which no signal interrupts.
		streaming, drained := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(drained)
			buf := make([]byte, 256)
			seen, closed := 0, false
			for {
				n, err := stdout.Read(buf)
				seen += n
				if seen >= 40 && !closed {
					close(streaming)
					closed = true
				}
				if err != nil {
					if !closed {
						close(streaming)
					}
					return
				}
			}
		}()
		select {
		case <-streaming:
		case <-time.After(5 * time.Minute):
			cmd.Process.Kill()
			t.Fatalf("%v: no tokens streamed within 5 minutes (stderr %q)", c.sig, stderr.String())
		}
		sent := time.Now()
		cmd.Process.Signal(c.sig)
		select { // stdout closes when the process exits
		case <-drained:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
		}
		err = cmd.Wait()
		took := time.Since(sent)
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != c.want {
			t.Errorf("%v: exit status %d, want %d (stderr %q)", c.sig, code, c.want, stderr.String())
		}
		if took > 2*time.Second {
			t.Errorf("%v: exit took %v", c.sig, took)
		}
	}
}
