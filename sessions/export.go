package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/internal/atomicfile"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/steering"
)

// BundleVersion is the version of steering.json this build writes; its
// schema is in docs/export.md. A change that an older reader would
// misread bumps it.
const BundleVersion = 1

// The files of an export folder.
const (
	fileGeneration = "generation_config.json"
	fileSteering   = "steering.json"
	filePrompt     = "prompt.txt"
	fileReadme     = "README.md"
	// fileVectorGGUF is the llama.cpp control vector; fileVectorST holds the
	// vectors instead when a steered block is 0, which llama.cpp cannot
	// steer.
	fileVectorGGUF = "steering.gguf"
	fileVectorST   = "steering.safetensors"
)

// bundleFiles are every name an export may write (an existing one is never
// replaced without Force).
var bundleFiles = []string{fileGeneration, fileSteering, filePrompt, fileReadme, fileVectorGGUF, fileVectorST}

// BundleOptions complete an export.
type BundleOptions struct {
	// ModelID names the model in the README and steering.json: a hub id or
	// a path ("" = the session's model, else the model's source).
	ModelID string
	// Force replaces the files of an earlier export in the folder.
	Force bool
	// Progress reports a preset's vector being computed (first use only).
	Progress func(done, total int)
	// Resolve, when set, resolves the plan instead of steering.Resolve (a
	// steering.Leader's, so the other ranks of a sharded model compute a
	// preset's vector with rank 0).
	Resolve func(ctx context.Context, m *engine.Model, p steering.Plan, progress func(done, total int)) (*steering.Resolved, error)
}

// Bundle describes a written export folder.
type Bundle struct {
	// Dir is the folder; Files the names written in it.
	Dir   string
	Files []string
	// Steering is the session's plan resolved against the model.
	Steering *steering.Resolved
	// Notes say what llama.cpp or transformers cannot reproduce exactly (the
	// README repeats them).
	Notes []string
}

// ExportDir is where an export of the session named name goes unless told
// otherwise: the exports folder of engine.DataDir.
func ExportDir(name string) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	d, err := engine.DataDir()
	if err != nil {
		return "", fmt.Errorf("export dir: %w", err)
	}
	return filepath.Join(d, "exports", name), nil
}

// ErrExportExists is returned (wrapped) when the export folder already
// holds an export's files and Force is not set.
var ErrExportExists = errors.New("the export folder already holds an export")

// ExportBundle resolves s's plan against m (steering.Resolve: an export
// before any run names the layer and alpha a run would use) and writes the
// export folder dir ("" = ExportDir(s.Name)): generation_config.json (valid
// under transformers' validate(strict=True)), steering.json (versioned,
// docs/export.md), the vectors (steering.gguf, a llama.cpp control vector;
// steering.safetensors when block 0 is steered), prompt.txt (the prompt
// text for llama.cpp) and README.md with a llama.cpp command line and a
// transformers script. Files are mode 0644; files of an earlier export are
// replaced only with opts.Force. The TUI's ctrl+e and `genkit export` both
// call it.
func ExportBundle(ctx context.Context, m *engine.Model, s *Session, dir string, opts BundleOptions) (*Bundle, error) {
	if err := CheckName(s.Name); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if dir == "" {
		var err error
		if dir, err = ExportDir(s.Name); err != nil {
			return nil, err
		}
	}
	if !opts.Force {
		var found []string
		for _, f := range bundleFiles {
			if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
				found = append(found, f)
			}
		}
		if len(found) > 0 {
			return nil, fmt.Errorf("export to %s: %w (%s): choose another folder or replace them with --force",
				dir, ErrExportExists, strings.Join(found, ", "))
		}
	}
	resolve := opts.Resolve
	if resolve == nil {
		resolve = steering.Resolve
	}
	r, err := resolve(ctx, m, s.Steering, opts.Progress)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	gen, err := steering.Generation(m, &s.Generation)
	if err != nil {
		return nil, fmt.Errorf("export: generation: %w", err)
	}
	prompt := s.PromptOf()
	text, addBOS, err := m.PromptText(prompt)
	if err != nil {
		return nil, fmt.Errorf("export: prompt: %w", err)
	}
	ids, err := m.EncodePrompt(prompt)
	if err != nil {
		return nil, fmt.Errorf("export: prompt: %w", err)
	}
	b := &bundle{s: s, m: m, r: r, gen: gen, prompt: prompt, ids: ids, modelID: opts.ModelID}
	if b.modelID == "" {
		b.modelID = s.Model
	}
	if b.modelID == "" {
		b.modelID = m.Source
	}
	b.vectorFile = fileVectorGGUF
	if _, _, err := steering.LlamaCppRange(r.Layers); err != nil {
		b.vectorFile = fileVectorST
	}
	b.llamaPrompt = llamaCppPrompt(m, text, addBOS)
	b.hf, b.dropped = gen.ForTransformers()

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if opts.Force {
		for _, f := range bundleFiles {
			if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("export: replace %s: %w", f, err)
			}
		}
	}
	out := &Bundle{Dir: dir, Steering: r}
	write := func(name string, data []byte) error {
		if err := writeFile0644(filepath.Join(dir, name), data); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		out.Files = append(out.Files, name)
		return nil
	}
	genJSON, err := json.MarshalIndent(b.hf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("export: generation_config.json: %w", err)
	}
	if err := write(fileGeneration, append(genJSON, '\n')); err != nil {
		return nil, err
	}
	vecPath := filepath.Join(dir, b.vectorFile)
	if err := r.SaveVector(m, vecPath); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := os.Chmod(vecPath, 0o644); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if b.vectorFile == fileVectorGGUF {
		// Never hand out a control vector llama.cpp's loader would refuse.
		if _, err := steering.CheckLlamaCppControlVector(vecPath, m.HiddenSize(), m.NumLayers()); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
	}
	out.Files = append(out.Files, b.vectorFile)
	if err := write(filePrompt, []byte(b.llamaPrompt+"\n")); err != nil {
		return nil, err
	}
	readme, notes, err := b.readme()
	if err != nil {
		return nil, fmt.Errorf("export: README.md: %w", err)
	}
	out.Notes = notes
	sj := b.steeringJSON(notes)
	if err := sj.check(); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	st, err := json.MarshalIndent(sj, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("export: steering.json: %w", err)
	}
	if err := write(fileSteering, append(st, '\n')); err != nil {
		return nil, err
	}
	if err := write(fileReadme, []byte(readme)); err != nil {
		return nil, err
	}
	sort.Strings(out.Files)
	return out, nil
}

// writeFile0644 writes data atomically as an ordinary file, mode 0644.
func writeFile0644(path string, data []byte) error {
	return atomicfile.Write(path, data, 0o644)
}

// llamaCppPrompt is the text llama.cpp must tokenize to get genkit's ids:
// llama.cpp tokenizes -f's text with special tokens and adds BOS when the
// model's vocabulary says so, so a chat text that starts with the BOS token
// loses it there (genkit does not add one to a chat text).
func llamaCppPrompt(m *engine.Model, text string, addBOS bool) string {
	tk := m.Tokenizer
	if !addBOS && tk.AddBOS && tk.BOS >= 0 {
		if bos := m.TokenText(tk.BOS); bos != "" {
			return strings.TrimPrefix(text, bos)
		}
	}
	return text
}

// bundle is what the files of one export are made from.
type bundle struct {
	s           *Session
	m           *engine.Model
	r           *steering.Resolved
	gen         *sampling.GenerationConfig // layered, as genkit decodes
	hf          *sampling.GenerationConfig // generation_config.json
	dropped     []string
	prompt      engine.Prompt
	ids         []int
	modelID     string
	vectorFile  string
	llamaPrompt string
}

// steeringFile is steering.json (docs/export.md).
type steeringFile struct {
	Version   int              `json:"version"`
	Generator string           `json:"generator"`
	Session   string           `json:"session"`
	Model     steeringModel    `json:"model"`
	Prompt    steeringPrompt   `json:"prompt"`
	Steering  steeringSettings `json:"steering"`
	Genkit    genkitSampling   `json:"genkit_sampling"`
	Notes     []string         `json:"notes"`
	Outputs   *lastOutputs     `json:"last_outputs,omitempty"`
}

type steeringModel struct {
	ID           string `json:"id"`
	Architecture string `json:"architecture"`
	Blocks       int    `json:"blocks"`
	HiddenSize   int    `json:"hidden_size"`
	Format       string `json:"format"`
}

type steeringPrompt struct {
	Chat       bool              `json:"chat"`
	System     string            `json:"system,omitempty"`
	Text       string            `json:"text,omitempty"`
	Messages   []engine.Message  `json:"messages,omitempty"`
	ChatKwargs engine.ChatKwargs `json:"chat_kwargs,omitempty"`
	TokenIDs   []int             `json:"token_ids"`
	LlamaCpp   string            `json:"llama_cpp_file"`
}

type steeringSettings struct {
	Preset     string            `json:"preset,omitempty"`
	Vector     string            `json:"vector,omitempty"`
	Method     string            `json:"method,omitempty"`
	Mode       string            `json:"mode"`
	Layers     []int             `json:"layers"`
	Alpha      float64           `json:"alpha"`
	Schedule   scheduleObject    `json:"schedule"`
	Scope      string            `json:"scope"`
	Normalize  bool              `json:"normalize"`
	FinalNorm  bool              `json:"final_norm"`
	VectorFile string            `json:"vector_file"`
	Tensors    map[string]string `json:"tensors"`
}

// scheduleObject writes a schedule as an object (kind and its parameters)
// with its SPEC string.
type scheduleObject struct {
	Kind  string  `json:"kind"`
	Spec  string  `json:"spec"`
	Steps int     `json:"steps,omitempty"`
	From  float64 `json:"from,omitempty"`
	To    float64 `json:"to,omitempty"`
	Start int     `json:"start,omitempty"`
	End   int     `json:"end,omitempty"`
}

type genkitSampling struct {
	Seed             *uint64  `json:"seed,omitempty"`
	FrequencyPenalty *float64 `json:"frequency_penalty,omitempty"`
	PresencePenalty  *float64 `json:"presence_penalty,omitempty"`
	Dropped          []string `json:"dropped_from_generation_config,omitempty"`
}

type lastOutputs struct {
	Base    string `json:"base,omitempty"`
	Steered string `json:"steered,omitempty"`
}

func (b *bundle) steeringJSON(notes []string) steeringFile {
	r, p := b.r, b.r.Plan
	tensors := map[string]string{}
	for _, l := range r.Layers {
		name := fmt.Sprintf("direction.%d", l)
		if b.vectorFile == fileVectorGGUF {
			n, _ := steering.LlamaCppDirection(l)
			name = fmt.Sprintf("direction.%d", n)
		}
		tensors[fmt.Sprint(l)] = name
	}
	st := steeringFile{
		Version:   BundleVersion,
		Generator: "genkit",
		Session:   b.s.Name,
		Model: steeringModel{ID: b.modelID, Architecture: b.m.Config.Architecture, Blocks: b.m.NumLayers(),
			HiddenSize: b.m.HiddenSize(), Format: b.m.Format},
		Prompt: steeringPrompt{Chat: b.prompt.IsChat(), System: b.prompt.System, Text: b.prompt.Text, Messages: b.prompt.Messages,
			ChatKwargs: b.prompt.ChatKwargs, TokenIDs: b.ids, LlamaCpp: filePrompt},
		Steering: steeringSettings{Preset: p.Preset, Vector: p.Vector, Method: string(p.Method), Mode: string(r.Mode),
			Layers: r.Layers, Alpha: r.Alpha, Schedule: scheduleOf(p.Schedule), Scope: scopeOf(p), Normalize: p.Normalize,
			FinalNorm: p.FinalNorm, VectorFile: b.vectorFile, Tensors: tensors},
		Genkit: genkitSampling{Seed: b.gen.Seed, FrequencyPenalty: b.gen.FrequencyPenalty, PresencePenalty: b.gen.PresencePenalty,
			Dropped: b.dropped},
		Notes: notes,
	}
	if b.s.Base != "" || b.s.Steered != "" {
		st.Outputs = &lastOutputs{Base: b.s.Base, Steered: b.s.Steered}
	}
	return st
}

// scheduleOf is a schedule as steering.json writes it.
func scheduleOf(sc steering.Schedule) scheduleObject {
	kind := sc.Kind
	if kind == "" {
		kind = "constant"
	}
	return scheduleObject{Kind: kind, Spec: sc.String(), Steps: sc.Steps, From: sc.From, To: sc.To, Start: sc.Start, End: sc.End}
}

func scopeOf(p steering.Plan) string {
	s, _ := steering.ParseScope(string(p.Scope))
	return string(s)
}

// ExportOptions were the options of Export.
//
// Deprecated: use ExportBundle and BundleOptions.
type ExportOptions struct {
	SaveVector   func(path string) error
	ModelID      string
	HiddenLayers int
	Layer        int
	Alpha        float64
}

// Export is the former export entry point; it writes nothing.
//
// Deprecated: it cannot resolve the plan or the prompt without the model:
// call ExportBundle(ctx, model, session, dir, BundleOptions{...}).
func Export(s *Session, dir string, opts ExportOptions) error {
	return fmt.Errorf("export of %s: sessions.Export is replaced by sessions.ExportBundle (it needs the model)", s.Name)
}
