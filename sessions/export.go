package sessions

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// ExportOptions complete a session for export.
type ExportOptions struct {
	// SaveVector writes the steering vector to the given .gguf path.
	SaveVector func(path string) error
	// ModelID names the model for the README (a hub id or a path).
	ModelID string
	// HiddenLayers is the model's number of blocks.
	HiddenLayers int
	// Layer and Alpha are the session's steering resolved against the model
	// (steering.Resolve): the block steered and the strength in force.
	Layer int
	Alpha float64
}

// steeringJSON is steering.json of an exported folder.
type steeringJSON struct {
	Model    string  `json:"model"`
	Layer    int     `json:"layer"`
	Alpha    float64 `json:"alpha"`
	Schedule string  `json:"schedule"`
	Mode     string  `json:"mode"`
	Scope    string  `json:"scope"`
	Preset   string  `json:"preset,omitempty"`
	Vector   string  `json:"vector"`
	Note     string  `json:"layer_convention"`
}

// Export writes a tuned configuration to dir: generation_config.json (HF
// format), steering.json, the vector as a llama.cpp control vector
// (steering.gguf) and a README with the equivalent llama.cpp command line
// and transformers code.
func Export(s *Session, dir string, opts ExportOptions) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	gen, err := json.MarshalIndent(&s.Generation, "", "  ")
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(filepath.Join(dir, "generation_config.json"), append(gen, '\n')); err != nil {
		return err
	}
	st := steeringJSON{Model: opts.ModelID, Layer: opts.Layer, Alpha: opts.Alpha, Schedule: s.Steering.Schedule.String(),
		Mode: string(s.Steering.Mode), Scope: string(s.Steering.Scope), Preset: s.Steering.Preset, Vector: "steering.gguf",
		Note: "layer L is the output of Hugging Face model.model.layers[L] and llama.cpp's direction.L"}
	sj, _ := json.MarshalIndent(st, "", "  ")
	if err := WriteFileAtomic(filepath.Join(dir, "steering.json"), append(sj, '\n')); err != nil {
		return err
	}
	if opts.SaveVector != nil {
		if err := opts.SaveVector(filepath.Join(dir, "steering.gguf")); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	var b strings.Builder
	if err := readme.Execute(&b, map[string]any{"S": s, "St": st, "O": opts, "Temp": s.Generation.Temp(), "TopK": s.Generation.K(),
		"TopP": orF(s.Generation.TopP, 1), "Rep": orF(s.Generation.RepetitionPenalty, 1), "Sample": s.Generation.Sampling(),
		"LayerNext": st.Layer + 1}); err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, "README.md"), []byte(b.String()))
}

func orF(p *float64, d float64) float64 {
	if p == nil {
		return d
	}
	return *p
}

var readme = template.Must(template.New("readme").Parse(`# {{.S.Name}}: a steering configuration exported by genkit

- model: {{.O.ModelID}}
- steering: {{if .St.Preset}}preset {{.St.Preset}}, {{end}}layer {{.St.Layer}}, alpha {{.St.Alpha}}, {{.St.Mode}}, scope {{.St.Scope}}, schedule {{.St.Schedule}}
- files: generation_config.json (Hugging Face), steering.json, steering.gguf (llama.cpp control vector)

Layer {{.St.Layer}} means the output of block {{.St.Layer}}: Hugging Face's ` + "`model.model.layers[{{.St.Layer}}]`" + `
and llama.cpp's ` + "`direction.{{.St.Layer}}`" + `. {{if eq .St.Layer 0}}llama.cpp cannot steer block 0.{{end}}

## llama.cpp

` + "```sh" + `
llama-cli -m MODEL.gguf --control-vector-scaled steering.gguf {{.St.Alpha}} \
  --control-vector-layer-range {{.St.Layer}} {{.St.Layer}} \
  {{if .Sample}}--temp {{.Temp}} --top-k {{.TopK}} --top-p {{.TopP}}{{else}}--temp 0{{end}} --repeat-penalty {{.Rep}}
` + "```" + `

llama.cpp steers every position with a constant scale (genkit's scope "all", schedule "constant");
its samplers apply temperature last, so sampled text differs from transformers' even with the
same settings.

## Python (transformers)

` + "```python" + `
import torch
from gguf import GGUFReader  # pip install gguf
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

model_id = "{{.O.ModelID}}"
tok = AutoTokenizer.from_pretrained(model_id)
model = AutoModelForCausalLM.from_pretrained(model_id, dtype=torch.float32)
vec = {t.name: t.data for t in GGUFReader("steering.gguf").tensors}["direction.{{.St.Layer}}"]
v = torch.tensor(vec, dtype=model.dtype)
alpha = {{.St.Alpha}}

def add_vector(module, args, output):
    h = output[0] if isinstance(output, tuple) else output
    h = h + alpha * v.to(h.device)
    return (h,) + tuple(output[1:]) if isinstance(output, tuple) else h

model.model.layers[{{.St.Layer}}].register_forward_hook(add_vector)
gen = GenerationConfig.from_pretrained(".")
ids = tok.apply_chat_template([{"role": "user", "content": "Hello!"}], add_generation_prompt=True, return_tensors="pt")
print(tok.decode(model.generate(ids, generation_config=gen)[0][ids.shape[1]:]))
` + "```" + `
{{if ne .St.Scope "all"}}
The hook above steers every position; genkit's scope "{{.St.Scope}}" restricts that (see steering.json).
{{end}}`))
