package sessions_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/engine/gguf"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/sessions"
	"github.com/mlx-genkit/genkit/steering"
)

func defaultModel(t *testing.T) *engine.Model {
	t.Helper()
	path, err := engine.DefaultModelPath()
	if err != nil {
		t.Fatal(err)
	}
	m, err := engine.Load(context.Background(), path, engine.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestExportBundle exports a greedy session whose plan leaves layer and
// alpha auto (as before any run) and checks every file against the rules:
// the folder under the data dir, mode 0644, a control vector llama.cpp's
// loader accepts (read back with genkit's own GGUF reader) holding the
// resolved layer's vector under direction.L, a generation_config.json
// without what transformers' strict validation refuses, a versioned
// steering.json, prompt.txt and a README with this llama.cpp's flag syntax.
// A second export is refused and --force replaces it.
func TestExportBundle(t *testing.T) {
	t.Setenv("GENKIT_DATA_DIR", t.TempDir())
	m := defaultModel(t)
	s := &sessions.Session{Name: "harbour", Prompt: "Describe a harbour at dawn.", System: "Answer in two sentences.", Chat: true,
		ChatKwargs: engine.ChatKwargs{"unused_flag": json.RawMessage("true")},
		Steering:   steering.Plan{Preset: "pirate", Method: "mean", Schedule: steering.Schedule{Kind: "warmup", Steps: 4}, Mode: "residual", Scope: "all"},
		Generation: sampling.GenerationConfig{DoSample: sampling.Ptr(false), Temperature: sampling.Ptr(0.7), TopK: sampling.Ptr(20),
			RepetitionPenalty: sampling.Ptr(1.1), MaxNewTokens: sampling.Ptr(24), Seed: sampling.Ptr(uint64(9))}}
	b, err := sessions.ExportBundle(context.Background(), m, s, "", sessions.BundleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := sessions.ExportDir("harbour")
	if b.Dir != want || !strings.HasPrefix(want, os.Getenv("GENKIT_DATA_DIR")) {
		t.Fatalf("exported to %s, want %s under the data dir", b.Dir, want)
	}
	r := b.Steering
	wantLayer, _ := s.Steering.AutoLayer(m.NumLayers())
	if r.Layer != wantLayer || r.Layer == 0 {
		t.Fatalf("resolved layer %d, want the preset's %d", r.Layer, wantLayer)
	}
	for _, f := range []string{"README.md", "generation_config.json", "prompt.txt", "steering.gguf", "steering.json"} {
		st, err := os.Stat(filepath.Join(b.Dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %v, want 0644", f, st.Mode().Perm())
		}
	}

	// The control vector, as llama.cpp's loader reads it.
	vec := filepath.Join(b.Dir, "steering.gguf")
	blocks, err := steering.CheckLlamaCppControlVector(vec, m.HiddenSize(), m.NumLayers())
	if err != nil || len(blocks) != 1 || blocks[0] != r.Layer {
		t.Fatalf("control vector: blocks %v, %v; want [%d]", blocks, err, r.Layer)
	}
	h, err := gguf.ReadHeader(vec)
	if err != nil {
		t.Fatal(err)
	}
	if hint := h.Meta["controlvector.model_hint"].Str; hint != m.Config.Architecture {
		t.Errorf("model hint %q, want %q", hint, m.Config.Architecture)
	}
	if n, _ := h.Meta["controlvector.layer_count"].Int(); n != 1 || h.Meta["controlvector.layer_count"].Type != gguf.TypeInt32 {
		t.Errorf("layer_count %d (type %d), want int32 1", n, h.Meta["controlvector.layer_count"].Type)
	}
	if h.Tensors[0].Name != "direction."+itoa(r.Layer) {
		t.Errorf("tensor %s, want direction.%d", h.Tensors[0].Name, r.Layer)
	}
	got, err := h.ReadF32(vec, h.Tensors[0])
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range r.Vector() {
		if got[i] != x {
			t.Fatalf("vector value %d: file %g, resolved %g", i, got[i], x)
		}
	}

	// generation_config.json: greedy, so no sampling-only field; genkit's
	// seed is in steering.json instead.
	gc, err := sampling.LoadConfig(filepath.Join(b.Dir, "generation_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if issues := gc.TransformersIssues(); len(issues) > 0 || gc.Temperature != nil || gc.TopK != nil || gc.Seed != nil {
		t.Fatalf("generation_config.json: issues %v, %+v", issues, gc)
	}
	if *gc.RepetitionPenalty != 1.1 || *gc.MaxNewTokens != 24 || len(gc.EOSTokenID) == 0 {
		t.Fatalf("generation_config.json lost a field: %+v", gc)
	}

	var sj struct {
		Version int
		Prompt  struct {
			TokenIDs []int `json:"token_ids"`
		}
		Steering struct {
			Layers   []int
			Alpha    float64
			Schedule struct{ Kind, Spec string }
			Tensors  map[string]string
		}
		Genkit struct{ Seed *uint64 } `json:"genkit_sampling"`
	}
	readJSON(t, filepath.Join(b.Dir, "steering.json"), &sj)
	ids, _ := m.EncodePrompt(s.PromptOf())
	if sj.Version != sessions.BundleVersion || len(sj.Steering.Layers) != 1 || sj.Steering.Layers[0] != r.Layer || sj.Steering.Alpha != r.Alpha ||
		sj.Steering.Schedule.Spec != "warmup:4" || sj.Steering.Tensors[itoa(r.Layer)] != "direction."+itoa(r.Layer) ||
		sj.Genkit.Seed == nil || *sj.Genkit.Seed != 9 || len(sj.Prompt.TokenIDs) != len(ids) {
		t.Fatalf("steering.json: %+v", sj)
	}
	if data, err := os.ReadFile(filepath.Join(b.Dir, "steering.json")); err != nil {
		t.Fatal(err)
	} else if err := sessions.CheckSteeringJSON(data); err != nil {
		t.Fatalf("the exported steering.json fails its own check: %v", err)
	}

	text, _, _ := m.PromptText(s.PromptOf())
	pt, _ := os.ReadFile(filepath.Join(b.Dir, "prompt.txt"))
	if string(pt) != text+"\n" {
		t.Fatalf("prompt.txt %q, want the prompt text and one newline", pt)
	}
	readme, _ := os.ReadFile(filepath.Join(b.Dir, "README.md"))
	for _, want := range []string{
		"llama-completion -m ", "-f prompt.txt -no-cnv --no-display-prompt", "-n 24",
		"--control-vector-scaled steering.gguf:" + ftoa(r.Alpha), "--control-vector-layer-range " + itoa(r.Layer) + " " + itoa(r.Layer),
		"--samplers 'penalties;temperature' --temp 0", "--min-p 0", "--repeat-penalty 1.1", "--presence-penalty 0", "--frequency-penalty 0", "-s 9",
		"the schedule warmup:4 is not applied",
		"model.model.layers[layer].register_forward_hook", "gguf_file=GGUF_FILE", "return_dict=True",
		`"content": "Answer in two sentences."`, `"content": "Describe a harbour at dawn."`, `CHAT_KWARGS = {"unused_flag": True}`,
		"return ALPHA if t + 1 >= 4 else ALPHA * (t + 1) / 4",
	} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README lacks %q", want)
		}
	}
	if strings.Contains(string(readme), "--control-vector-scaled steering.gguf ") {
		t.Error("README uses the old --control-vector-scaled FILE SCALE form")
	}

	_, err = sessions.ExportBundle(context.Background(), m, s, "", sessions.BundleOptions{})
	if !errors.Is(err, sessions.ErrExportExists) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("a second export: %v", err)
	}
	if _, err := sessions.ExportBundle(context.Background(), m, s, "", sessions.BundleOptions{Force: true}); err != nil {
		t.Fatalf("--force: %v", err)
	}
	other := filepath.Join(t.TempDir(), "elsewhere")
	if b, err := sessions.ExportBundle(context.Background(), m, s, other, sessions.BundleOptions{}); err != nil || b.Dir != other {
		t.Fatalf("export to another folder: %v", err)
	}
}

// TestExportModes: a logit-bias session gets the LogitsProcessor recipe and
// a llama.cpp command marked as a different intervention; a session
// steering block 0 gets its vector as .safetensors and a command without a
// control vector, since llama.cpp cannot steer block 0.
func TestExportModes(t *testing.T) {
	m := defaultModel(t)
	base := sessions.Session{Name: "modes", Prompt: "Hello", Chat: true,
		Generation: sampling.GenerationConfig{MaxNewTokens: sampling.Ptr(8)}}
	lb := base
	lb.Steering = steering.Plan{Preset: "pirate", Mode: "logit-bias", Alpha: sampling.Ptr(4.0), Schedule: steering.Schedule{Kind: "ramp", From: 0, To: 4, Steps: 6}}
	b, err := sessions.ExportBundle(context.Background(), m, &lb, t.TempDir(), sessions.BundleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	readme, _ := os.ReadFile(filepath.Join(b.Dir, "README.md"))
	for _, want := range []string{"class SteeringBias(LogitsProcessor)", "processors.append(SteeringBias(input_ids.shape[1]))",
		"which llama.cpp has no form for", "return 4 if t >= 6 else 0 + (4 - 0) * t / 6", "--control-vector-scaled steering.gguf:4 "} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("logit-bias README lacks %q", want)
		}
	}
	if strings.Contains(string(readme), "register_forward_hook(steer(v))") {
		t.Error("the logit-bias recipe hooks the residual stream")
	}

	l0 := base
	l0.Steering = steering.Plan{Preset: "pirate", Layer: sampling.Ptr(0)}
	b, err = sessions.ExportBundle(context.Background(), m, &l0, t.TempDir(), sessions.BundleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(b.Dir, "steering.gguf")); err == nil {
		t.Error("a block-0 export wrote a .gguf llama.cpp refuses")
	}
	readme, _ = os.ReadFile(filepath.Join(b.Dir, "README.md"))
	if !strings.Contains(string(readme), "steers block 0, which llama.cpp cannot steer") || strings.Contains(string(readme), "--control-vector-scaled") ||
		!strings.Contains(string(readme), `load_file("steering.safetensors")`) {
		t.Errorf("block-0 README:\n%s", readme)
	}
}

// TestSessionChatFields: messages and chat kwargs round-trip through a
// version-2 file; a file without them (an older version 2) still loads; a
// bad conversation or a reserved kwarg is refused with the session named.
func TestSessionChatFields(t *testing.T) {
	t.Setenv("GENKIT_DATA_DIR", t.TempDir())
	s := sample()
	s.System = ""
	s.Messages = []engine.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Ahoy."}}
	s.ChatKwargs = engine.ChatKwargs{"enable_thinking": json.RawMessage("false")}
	if err := sessions.Save(s); err != nil {
		t.Fatal(err)
	}
	back, err := sessions.Load(s.Name)
	if err != nil {
		t.Fatal(err)
	}
	if back.Version != 2 || len(back.Messages) != 3 || string(back.ChatKwargs["enable_thinking"]) != "false" {
		t.Fatalf("round trip: %+v", back)
	}
	conv, err := back.PromptOf().Conversation()
	if err != nil || len(conv) != 4 || conv[3].Content != s.Prompt {
		t.Fatalf("conversation %v, %v", conv, err)
	}
	dir, _ := sessions.Dir()
	for name, body := range map[string]string{
		"plain":    `{"version": 2, "name": "plain", "prompt": "Hi", "chat": true, "steering": {"preset": "pirate"}}`,
		"badroles": `{"version": 2, "name": "badroles", "prompt": "", "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "steering": {"preset": "pirate"}}`,
		"badkw":    `{"version": 2, "name": "badkw", "prompt": "Hi", "chat_kwargs": {"messages": []}, "steering": {"preset": "pirate"}}`,
	} {
		os.WriteFile(filepath.Join(dir, name+".json"), []byte(body), 0o644)
		_, err := sessions.Load(name)
		if (name == "plain") != (err == nil) || (err != nil && !strings.Contains(err.Error(), name)) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
