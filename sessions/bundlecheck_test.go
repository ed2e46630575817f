package sessions_test

import (
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/sessions"
)

// goodSteeringJSON is a version-1 steering.json as docs/export.md shows it.
const goodSteeringJSON = `{
  "version": 1, "generator": "genkit", "session": "ocean",
  "model": {"id": "HuggingFaceTB/SmolLM2-135M-Instruct", "architecture": "llama", "blocks": 30, "hidden_size": 576, "format": "gguf"},
  "prompt": {"chat": true, "system": "Be kind.", "text": "Tell me about the sea.",
    "messages": [{"role": "user", "content": "Tell me about the sea."}], "chat_kwargs": {"enable_thinking": false},
    "token_ids": [1, 9690, 198], "llama_cpp_file": "prompt.txt"},
  "steering": {"preset": "pirate", "method": "mean", "mode": "residual", "layers": [15], "alpha": 1,
    "schedule": {"kind": "warmup", "spec": "warmup:4", "steps": 4}, "scope": "all", "normalize": false, "final_norm": false,
    "vector_file": "steering.gguf", "tensors": {"15": "direction.15"}},
  "genkit_sampling": {"seed": 42, "frequency_penalty": 0.5, "dropped_from_generation_config": ["temperature: only used when sampling"]},
  "notes": ["llama.cpp: …"],
  "last_outputs": {"base": "The sea.", "steered": "Arr."}
}`

// TestCheckSteeringJSON: the documented example passes; each broken field
// is refused with an error naming it.
func TestCheckSteeringJSON(t *testing.T) {
	if err := sessions.CheckSteeringJSON([]byte(goodSteeringJSON)); err != nil {
		t.Fatalf("the documented steering.json: %v", err)
	}
	bad := map[string][2]string{
		"no version":      {`"version": 1,`, ``},
		"newer version":   {`"version": 1,`, `"version": 2,`},
		"no blocks":       {`"blocks": 30`, `"blocks": 0`},
		"layer outside":   {`"layers": [15]`, `"layers": [30]`},
		"missing tensor":  {`{"15": "direction.15"}`, `{}`},
		"alpha too large": {`"alpha": 1,`, `"alpha": 1e300,`},
		"unknown mode":    {`"mode": "residual"`, `"mode": "sideways"`},
		"vector file":     {`"vector_file": "steering.gguf"`, `"vector_file": "../x.gguf"`},
		"negative id":     {`[1, 9690, 198]`, `[1, -5]`},
		"unknown field":   {`"session": "ocean",`, `"session": "ocean", "sesion": 1,`},
		"truncated":       {`"last_outputs"`, `"last_outp`},
	}
	want := map[string]string{"no version": "version is missing", "newer version": "version 2", "no blocks": "model.blocks",
		"layer outside": "steering.layers[0] = 30", "missing tensor": "steering.tensors", "alpha too large": "steering.alpha",
		"unknown mode": "steering.mode", "vector file": "steering.vector_file", "negative id": "prompt.token_ids[1]",
		"unknown field": "sesion", "truncated": "steering.json"}
	for name, r := range bad {
		data := strings.Replace(goodSteeringJSON, r[0], r[1], 1)
		if name == "truncated" {
			data = data[:strings.Index(data, `"last_outp`)+10]
		}
		err := sessions.CheckSteeringJSON([]byte(data))
		if err == nil || !strings.Contains(err.Error(), want[name]) {
			t.Errorf("%s: got %v, want an error naming %q", name, err, want[name])
		}
	}
}

// FuzzSteeringJSON: any steering.json is refused with an error or passes
// the check; none panics.
func FuzzSteeringJSON(f *testing.F) {
	f.Add([]byte(goodSteeringJSON))
	f.Add([]byte(goodSteeringJSON[:len(goodSteeringJSON)/2]))
	f.Add([]byte(strings.Replace(goodSteeringJSON, `"alpha": 1,`, `"alpha": NaN,`, 1)))
	f.Add([]byte(strings.Replace(goodSteeringJSON, `"layers": [15]`, `"layers": [-1, 99999999999999999999]`, 1)))
	f.Add([]byte(strings.Replace(goodSteeringJSON, `"Be kind."`, "\"\xff\xfe\"", 1)))
	f.Add([]byte(strings.Repeat(`{"notes":[`, 5000)))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := sessions.CheckSteeringJSON(data); err != nil && !strings.HasPrefix(err.Error(), "steering.json") {
			t.Fatalf("error does not name steering.json: %v", err)
		}
	})
}
