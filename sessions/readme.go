package sessions

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/steering"
)

// LlamaCppTool is the llama.cpp program the export's command line runs: the
// one-shot completion tool (llama-cli is conversation-only in current
// llama.cpp).
const LlamaCppTool = "llama-completion"

// modelFiles says how each tool reaches the model.
type modelFiles struct {
	llamaModel string // -m argument ("" when there is no GGUF)
	pyDir      string // from_pretrained's first argument
	pyGGUF     string // gguf_file argument ("" for a safetensors model)
	note       string // what the user must do first, if anything
}

func (b *bundle) modelFiles() modelFiles {
	src, _ := filepath.Abs(b.m.Source)
	switch b.m.Format {
	case "gguf":
		dir, file := filepath.Split(src)
		return modelFiles{llamaModel: src, pyDir: filepath.Clean(dir), pyGGUF: file}
	case "mlx":
		return modelFiles{note: "the model is an MLX-quantized checkpoint, which neither llama.cpp nor transformers loads: " +
			"use the checkpoint it was quantized from (replace MODEL below; for llama.cpp convert it with convert_hf_to_gguf.py)"}
	}
	py := src
	if engine.IsHubID(b.modelID) {
		py = b.modelID
	}
	return modelFiles{pyDir: py, note: "llama.cpp needs the model as GGUF: convert it with llama.cpp's convert_hf_to_gguf.py " +
		"and replace MODEL.gguf below"}
}

// readme is README.md and the notes it states.
func (b *bundle) readme() (string, []string, error) {
	mf := b.modelFiles()
	cmd, llamaNotes := b.llamaCpp(mf)
	py, pyNotes := b.python(mf)
	r := b.r
	var sb strings.Builder
	fmt.Fprintf(&sb, "# %s: a steering configuration exported by genkit\n\n", b.s.Name)
	fmt.Fprintf(&sb, "- model: %s\n", b.modelID)
	fmt.Fprintf(&sb, "- steering: %s; scope %s; schedule %s\n", r.Describe(), scopeOf(r.Plan), r.Plan.Schedule.String())
	fmt.Fprintf(&sb, "- files: `%s` (transformers), `%s` (everything here, docs/export.md in genkit), `%s` (the vectors), `%s` (the prompt as llama.cpp reads it)\n\n",
		fileGeneration, fileSteering, b.vectorFile, filePrompt)
	fmt.Fprintf(&sb, "Layer L is the output of block L (0-based): what a forward hook on Hugging Face's `model.model.layers[L]` "+
		"sees, and what llama.cpp's tensor `direction.L` steers (llama.cpp has no `direction.0`: it cannot steer block 0).\n\n")
	if mf.note != "" {
		fmt.Fprintf(&sb, "Before you start: %s.\n\n", mf.note)
	}
	sb.WriteString("## llama.cpp\n\nRun in this folder (`" + LlamaCppTool + "` is built by llama.cpp's CMake target of that name):\n\n```sh\n")
	sb.WriteString(cmd)
	sb.WriteString("\n```\n\n")
	for _, n := range llamaNotes {
		sb.WriteString("- " + n + "\n")
	}
	sb.WriteString("\n## Python (transformers)\n\nRun in this folder (`pip install torch \"transformers>=5\" gguf accelerate`; a GGUF model needs gguf and accelerate):\n\n```python\n")
	sb.WriteString(py)
	sb.WriteString("```\n\n")
	for _, n := range pyNotes {
		sb.WriteString("- " + n + "\n")
	}
	notes := append(append([]string(nil), prefixAll("llama.cpp: ", llamaNotes)...), prefixAll("transformers: ", pyNotes)...)
	return sb.String(), notes, nil
}

func prefixAll(p string, xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = p + x
	}
	return out
}

// llamaCpp is the llama.cpp command line (this llama.cpp's flag syntax:
// common/arg.cpp) and what it cannot reproduce.
func (b *bundle) llamaCpp(mf modelFiles) (string, []string) {
	r, g := b.r, b.gen
	var notes []string
	model := mf.llamaModel
	if model == "" {
		model = "MODEL.gguf"
	}
	maxNew := g.MaxNew(len(b.ids))
	ctxLen := len(b.ids) + maxNew
	args := [][]string{{LlamaCppTool, "-m", model, "-f", filePrompt, "-no-cnv", "--no-display-prompt"},
		{"-n", strconv.Itoa(maxNew), "-c", strconv.Itoa(ctxLen)}}
	start, end, rangeErr := steering.LlamaCppRange(r.Layers)
	switch {
	case rangeErr != nil:
		notes = append(notes, "the session steers block 0, which llama.cpp cannot steer: the command runs unsteered ("+fileVectorST+" holds the vectors for genkit and Python)")
	case r.Mode == steering.ModeLogitBias:
		notes = append(notes, fmt.Sprintf("the session steers through a logit bias (alpha * W_U v), which llama.cpp has no form for; "+
			"the command steers the residual stream at block %d with the same vector and alpha instead (genkit's residual mode), which is a different intervention", r.Layer))
		fallthrough
	default:
		scale := r.Alpha
		if r.Plan.Schedule.Kind == "ramp" {
			scale = r.Plan.Schedule.To
		}
		args = append(args, []string{"--control-vector-scaled", fileVectorGGUF + ":" + fmtNum(scale),
			"--control-vector-layer-range", strconv.Itoa(start), strconv.Itoa(end)})
		if k := r.Plan.Schedule.Kind; k != "" && k != "constant" {
			notes = append(notes, fmt.Sprintf("llama.cpp steers with a constant scale: the schedule %s is not applied (the command uses %s throughout)",
				r.Plan.Schedule.String(), fmtNum(scale)))
		}
		if s := scopeOf(r.Plan); s != string(steering.ScopeAll) {
			notes = append(notes, fmt.Sprintf("llama.cpp steers every position: scope %q is not applied", s))
		}
		if r.Plan.Normalize {
			notes = append(notes, "llama.cpp adds the vector without keeping each position's norm (normalize is not applied)")
		}
	}
	// Sampling: every llama.cpp sampler set, in transformers' order.
	rep := orF(g.RepetitionPenalty, 1)
	freq, pres := orF(g.FrequencyPenalty, 0), orF(g.PresencePenalty, 0)
	if g.Sampling() {
		args = append(args, []string{"--samplers", "penalties;temperature;top_k;top_p;min_p;typ_p",
			"--temp", fmtNum(g.Temp()), "--top-k", strconv.Itoa(g.K()), "--top-p", fmtNum(orF(g.TopP, 1)),
			"--min-p", fmtNum(orF(g.MinP, 0)), "--typical", fmtNum(orF(g.TypicalP, 1))})
	} else {
		args = append(args, []string{"--samplers", "penalties;temperature", "--temp", "0", "--top-k", "0", "--top-p", "1",
			"--min-p", "0", "--typical", "1"})
	}
	args = append(args, []string{"--repeat-penalty", fmtNum(rep), "--repeat-last-n", strconv.Itoa(ctxLen),
		"--presence-penalty", fmtNum(pres), "--frequency-penalty", fmtNum(freq)},
		[]string{"--xtc-probability", "0", "--dry-multiplier", "0", "--mirostat", "0", "--top-nsigma", "-1"})
	if g.Seed != nil {
		args = append(args, []string{"-s", strconv.FormatUint(*g.Seed, 10)})
	} else if g.Sampling() {
		notes = append(notes, "the session has no seed (genkit draws one per run): llama.cpp picks its own")
	}
	if g.Sampling() {
		notes = append(notes, "sampled tokens differ from genkit's even with the same seed: the random streams differ")
	}
	if freq != 0 || pres != 0 {
		notes = append(notes, "llama.cpp counts the prompt's tokens for the frequency and presence penalties; genkit counts generated tokens only")
	}
	for field, set := range map[string]bool{"no_repeat_ngram_size": g.NoRepeatNgramSize != nil && *g.NoRepeatNgramSize > 0,
		"epsilon_cutoff": g.EpsilonCutoff != nil && *g.EpsilonCutoff > 0, "eta_cutoff": g.EtaCutoff != nil && *g.EtaCutoff > 0,
		"min_new_tokens": g.MinNewTokens != nil && *g.MinNewTokens > 0, "stop_strings": len(g.StopStrings) > 0,
		"sequence_bias": len(g.SequenceBias) > 0, "bad_words_ids": len(g.BadWordsIDs) > 0,
		"suppress_tokens": len(g.SuppressTokens) > 0, "max_time": g.MaxTime != nil && *g.MaxTime > 0} {
		if set {
			notes = append(notes, field+" has no llama.cpp flag here and is not applied")
		}
	}
	notes = append(notes, fmt.Sprintf("%s holds the prompt text genkit tokenizes (%d tokens) plus one newline, which llama.cpp's -f drops", filePrompt, len(b.ids)))
	lines := make([]string, len(args))
	for i, a := range args {
		q := make([]string, len(a))
		for j, s := range a {
			q[j] = shellQuote(s)
		}
		lines[i] = strings.Join(q, " ")
	}
	return strings.Join(lines, " \\\n  "), notes
}

func orF(p *float64, d float64) float64 {
	if p == nil {
		return d
	}
	return *p
}

// fmtNum writes a number the shortest way that reads back the same.
func fmtNum(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./:=+,@%-]+$`)

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// pyLiteral writes a JSON value as a Python literal.
func pyLiteral(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case json.Number:
		return x.String()
	case float64:
		return fmtNum(x)
	case int:
		return strconv.Itoa(x)
	case string:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.Encode(x)
		return strings.TrimSuffix(buf.String(), "\n")
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = pyLiteral(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = pyLiteral(k) + ": " + pyLiteral(x[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return "None"
}

// pyJSON writes raw JSON as a Python literal (numbers keep their form).
func pyJSON(raw []byte) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "None"
	}
	return pyLiteral(v)
}

// pySchedule is the Python body of alpha_at(t) for the plan's schedule (t:
// tokens generated before the forward pass; steering.Schedule.Alpha).
func pySchedule(s steering.Schedule) string {
	switch s.Kind {
	case "warmup":
		return fmt.Sprintf("    # schedule warmup:%d: alpha grows linearly over the first %d steps\n"+
			"    return ALPHA if t + 1 >= %d else ALPHA * (t + 1) / %d\n", s.Steps, s.Steps, s.Steps, s.Steps)
	case "ramp":
		return fmt.Sprintf("    # schedule %s: from %s to %s over %d steps (absolute strengths; ALPHA is not used)\n"+
			"    return %s if t >= %d else %s + (%s - %s) * t / %d\n", s.String(), fmtNum(s.From), fmtNum(s.To), s.Steps,
			fmtNum(s.To), s.Steps, fmtNum(s.From), fmtNum(s.To), fmtNum(s.From), s.Steps)
	case "window":
		end := "True"
		if s.End > 0 {
			end = fmt.Sprintf("t < %d", s.End)
		}
		return fmt.Sprintf("    # schedule %s: alpha on steps [%d, %d), 0 elsewhere (end 0: no end)\n"+
			"    return ALPHA if t >= %d and %s else 0.0\n", s.String(), s.Start, s.End, s.Start, end)
	}
	return "    # schedule constant\n    return ALPHA\n"
}

// python is the transformers script and what it cannot reproduce.
func (b *bundle) python(mf modelFiles) (string, []string) {
	r, g, p := b.r, b.gen, b.prompt
	var notes []string
	var sb strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	w("import json\n\nimport torch\n")
	if b.vectorFile == fileVectorGGUF {
		w("from gguf import GGUFReader\n")
	} else {
		w("from safetensors.numpy import load_file\n")
	}
	w("from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LogitsProcessor, LogitsProcessorList\n\n")
	dir := mf.pyDir
	if dir == "" {
		dir = "MODEL"
	}
	w("MODEL = %s\n", pyLiteral(dir))
	load := "MODEL"
	if mf.pyGGUF != "" {
		w("GGUF_FILE = %s  # transformers dequantizes it to float32\n", pyLiteral(mf.pyGGUF))
		load = "MODEL, gguf_file=GGUF_FILE"
	}
	w("tok = AutoTokenizer.from_pretrained(%s)\n", load)
	w("model = AutoModelForCausalLM.from_pretrained(%s, dtype=torch.float32).eval()\n\n", load)
	if p.IsChat() {
		msgs, _ := p.Conversation()
		w("messages = [\n")
		for _, m := range msgs {
			w("    {\"role\": %s, \"content\": %s},\n", pyLiteral(m.Role), pyLiteral(m.Content))
		}
		w("]\n")
		kw := "{}"
		if len(p.ChatKwargs) > 0 {
			raw, _ := json.Marshal(p.ChatKwargs)
			kw = pyJSON(raw)
		}
		w("CHAT_KWARGS = %s  # chat-template variables\n", kw)
		w("enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\", return_dict=True, **CHAT_KWARGS)\n")
	} else {
		w("PROMPT = %s\n", pyLiteral(p.Text))
		w("enc = tok(PROMPT, return_tensors=\"pt\")\n")
	}
	w("input_ids, attention_mask = enc[\"input_ids\"], enc[\"attention_mask\"]\n")
	w("with open(%s) as f:\n    genkit_ids = json.load(f)[\"prompt\"][\"token_ids\"]\n", pyLiteral(fileSteering))
	w("if input_ids[0].tolist() != genkit_ids:\n    print(\"note: transformers' prompt ids differ from genkit's (steering.json prompt.token_ids)\")\n\n")

	w("# The vectors: the one for block L is added to the output of model.model.layers[L].\n")
	if b.vectorFile == fileVectorGGUF {
		w("vectors = {int(t.name.split(\".\", 1)[1]): torch.tensor(t.data.copy()) for t in GGUFReader(%s).tensors}\n", pyLiteral(fileVectorGGUF))
	} else {
		w("vectors = {int(k.split(\".\", 1)[1]): torch.tensor(v) for k, v in load_file(%s).items()}\n", pyLiteral(fileVectorST))
	}
	w("ALPHA = %s\n\n\ndef alpha_at(t):\n    \"\"\"The strength when t tokens have been generated.\"\"\"\n%s\n\n", fmtNum(r.Alpha), pySchedule(r.Plan.Schedule))
	w("processors = []\n")
	if f, pr := orF(g.FrequencyPenalty, 0), orF(g.PresencePenalty, 0); f != 0 || pr != 0 {
		w("\n\nclass FrequencyPresence(LogitsProcessor):\n")
		w("    \"\"\"genkit's OpenAI-style penalties over the generated tokens.\"\"\"\n\n")
		w("    def __call__(self, ids, scores):\n        counts = torch.zeros_like(scores)\n")
		w("        counts.scatter_add_(1, ids[:, PROMPT_LEN:], torch.ones_like(ids[:, PROMPT_LEN:], dtype=scores.dtype))\n")
		w("        return scores - %s * counts - %s * (counts > 0).to(scores.dtype)\n\n\n", fmtNum(f), fmtNum(pr))
		w("PROMPT_LEN = input_ids.shape[1]\nprocessors.append(FrequencyPresence())\n")
	}
	if r.Mode == steering.ModeLogitBias {
		n, _ := json.Marshal(r.Plan.FinalNorm)
		w("\n# Logit-bias steering: alpha(t) * W_U v added to the scores (a user logits processor, where genkit applies it).\n")
		w("FINAL_NORM = %s\nwith torch.no_grad():\n    x = vectors[%d].unsqueeze(0)\n", pyLiteral(string(n) == "true"), r.Layer)
		w("    if FINAL_NORM:\n        x = model.model.norm(x)\n    bias = model.lm_head(x)[0].float()\n\n\n")
		w("class SteeringBias(LogitsProcessor):\n    def __init__(self, prompt_len):\n        self.prompt_len = prompt_len\n\n")
		w("    def __call__(self, ids, scores):\n        a = alpha_at(ids.shape[1] - self.prompt_len)\n        return scores + a * bias if a else scores\n\n\n")
		w("processors.append(SteeringBias(input_ids.shape[1]))\n")
	} else {
		norm, _ := json.Marshal(r.Plan.Normalize)
		w("\n# Residual steering: a forward hook on each steered block.\n")
		w("SCOPE = %s  # all, prompt (the prompt's forward pass only) or generated (the last position of every pass)\n", pyLiteral(scopeOf(r.Plan)))
		w("NORMALIZE = %s  # keep each position's norm\n", pyLiteral(string(norm) == "true"))
		w("step = [0]  # forward passes so far: 0 while the prompt is processed\n\n\n")
		w("def steer(v):\n    def hook(module, args, output):\n")
		w("        h = output[0] if isinstance(output, tuple) else output\n        a = alpha_at(step[0])\n")
		w("        if a == 0 or (SCOPE == \"prompt\" and step[0] > 0):\n            return output\n")
		w("        mask = torch.ones(h.shape[1], 1, dtype=h.dtype)\n")
		w("        if SCOPE == \"generated\" and step[0] == 0:\n            mask.zero_()\n            mask[-1] = 1\n")
		w("        out = h + a * mask * v.to(h.dtype)\n")
		w("        if NORMALIZE:\n            out = out * (h.norm(dim=-1, keepdim=True) / out.norm(dim=-1, keepdim=True))\n")
		w("        return (out,) + tuple(output[1:]) if isinstance(output, tuple) else out\n    return hook\n\n\n")
		w("for layer, v in vectors.items():\n    model.model.layers[layer].register_forward_hook(steer(v))\n")
		w("model.register_forward_hook(lambda module, args, output: step.__setitem__(0, step[0] + 1))\n")
	}
	w("\ngen = GenerationConfig.from_pretrained(\".\")  # %s of this folder\n", fileGeneration)
	if g.Seed != nil && g.Sampling() {
		w("torch.manual_seed(%d)  # transformers' draws differ from genkit's whatever the seed\n", *g.Seed)
	}
	w("with torch.no_grad():\n    out = model.generate(input_ids, attention_mask=attention_mask, generation_config=gen,\n")
	w("                         logits_processor=LogitsProcessorList(processors), tokenizer=tok)\n")
	w("print(tok.decode(out[0, input_ids.shape[1]:], skip_special_tokens=True))\n")

	if k := r.Plan.Schedule.Kind; k == "" || k == "constant" {
		notes = append(notes, "the schedule is constant: alpha_at returns alpha at every step")
	} else {
		notes = append(notes, fmt.Sprintf("the schedule %s is applied by alpha_at (t = tokens generated before the forward pass, as in genkit)", r.Plan.Schedule.String()))
	}
	if g.Sampling() {
		notes = append(notes, "sampled tokens differ from genkit's: the random streams differ (greedy decoding matches)")
	}
	if len(b.dropped) > 0 {
		notes = append(notes, "left out of "+fileGeneration+": "+strings.Join(b.dropped, "; "))
	}
	return sb.String(), notes
}
