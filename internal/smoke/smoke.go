package smoke

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/quality"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/steering"
)

// Instruction is what every line's prompt asks: a rewrite of the source
// line (the line follows it on the next line of the user turn).
const Instruction = "Rewrite this news line in your own words, in one sentence:"

// DefaultBound is the fluency bound: the steered lane's perplexity under
// the unsteered model may be at most this many times the base lane's
// (geometric mean over lines).
const DefaultBound = 2.0

// Options configure a smoke run.
type Options struct {
	Preset string
	// Mode is residual (default) or logit-bias.
	Mode string
	// Alpha and Layer override the setting (nil: the calibrated one for
	// this preset, mode and model, else the preset's).
	Alpha *float64
	Layer *int
	Lines int
	// Offset skips that many news lines first (calibration sweeps lines
	// the smoke run does not judge).
	Offset int
	MaxNew int
	Seed   uint64
	// Temperature of both lanes' sampling; 0 decodes greedily (the
	// default).
	Temperature float64
	Bound       float64
	HFRef       string // stored HF next-token distributions (smollm2_dequant_fp32.json)
	// SkipDeterminism decodes each line once (no determinism measure).
	SkipDeterminism bool
	Progress        func(done, total int)
	Guardrail       steering.GuardOptions
}

// Criterion is one pass/fail judgement of a run.
type Criterion struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Target string  `json:"target"`
	Pass   bool    `json:"pass"`
}

// Line is one news line rewritten by both lanes, with its measures.
type Line struct {
	Source         string           `json:"source"`
	Base           string           `json:"base"`
	Steered        string           `json:"steered"`
	BaseReasons    []quality.Reason `json:"base_reasons,omitempty"`
	SteeredReasons []quality.Reason `json:"steered_reasons,omitempty"`
	BaseReading    quality.Reading  `json:"base_reading"`
	SteeredReading quality.Reading  `json:"steered_reading"`
	Markers        [2]float64       `json:"markers"`      // base, steered
	ContentKept    [2]float64       `json:"content_kept"` // base, steered
	PPLRatio       float64          `json:"ppl_ratio"`
}

// Report is the smoke result; the JSON field names are a stable contract.
type Report struct {
	Lines              int             `json:"lines"`
	SuspectRateBase    float64         `json:"suspect_rate_base"`
	SuspectRateSteered float64         `json:"suspect_rate_steered"`
	Determinism        *float64        `json:"determinism"`
	Divergence         float64         `json:"divergence"`
	KLvsHF             *float64        `json:"kl_vs_hf"`
	Preset             string          `json:"preset"`
	Mode               string          `json:"mode"`
	Layer              int             `json:"layer"`
	Alpha              float64         `json:"alpha"`
	Setting            string          `json:"setting"` // flag, calibrated or preset
	Guardrails         steering.Counts `json:"guardrails"`
	// PersonaBase and PersonaSteered are mean projections of the lanes'
	// texts on the persona direction (through the unsteered model);
	// PersonaGain their difference.
	PersonaBase    float64 `json:"persona_base"`
	PersonaSteered float64 `json:"persona_steered"`
	PersonaGain    float64 `json:"persona_gain"`
	MarkersBase    float64 `json:"markers_base"`
	MarkersSteered float64 `json:"markers_steered"`
	// PPLRatio is the geometric mean over lines of steered over base
	// perplexity under the unsteered model.
	PPLRatio           float64 `json:"ppl_ratio"`
	ContentKeptBase    float64 `json:"content_kept_base"`
	ContentKeptSteered float64 `json:"content_kept_steered"`
	// BaseLanguageKept is the share of base lines in the source's language
	// (a base lane drifting into another language means the prompt or the
	// model, not steering, is at fault).
	BaseLanguageKept float64                `json:"base_language_kept"`
	ReasonsBase      map[quality.Reason]int `json:"reasons_base"`
	ReasonsSteered   map[quality.Reason]int `json:"reasons_steered"`
	Criteria         []Criterion            `json:"criteria"`
	Pass             bool                   `json:"pass"`
	// Worst are the five steered lines with the most faults (then the
	// highest perplexity ratio).
	Worst    []Line `json:"worst"`
	Examples []Line `json:"examples,omitempty"`
	All      []Line `json:"-"`
}

// Prompt is the chat prompt that asks for a rewrite of line.
func Prompt(m *engine.Model, line string) ([]int, error) {
	text, err := m.ApplyChatTemplate([]engine.Message{{Role: "user", Content: Instruction + "\n" + line}}, true)
	if err != nil {
		return nil, err
	}
	return m.Tokenizer.Encode(text, false)
}

// Setting resolves the mode, layer and alpha a run uses: the options'
// overrides, else the calibration stored for this preset, mode and model,
// else the preset's suggestion.
func Setting(m *engine.Model, p *steering.Preset, opts Options) (mode string, layer int, alpha float64, source string, err error) {
	mode = opts.Mode
	if mode == "" {
		mode = "residual"
	}
	if mode != "residual" && mode != "logit-bias" {
		return "", 0, 0, "", fmt.Errorf("mode %q: want residual or logit-bias", mode)
	}
	layer, alpha, source = p.Layer(m.NumLayers()), p.Alpha, "preset"
	fp, err := steering.Fingerprint(m)
	if err != nil {
		return "", 0, 0, "", err
	}
	c, ok, err := steering.LookupCalibration(p.Name, mode, fp)
	if err != nil {
		return "", 0, 0, "", err
	}
	if ok && c.Found {
		layer, alpha, source = c.Layer, c.Alpha, "calibrated"
	}
	if opts.Alpha != nil {
		alpha, source = *opts.Alpha, "flag"
	}
	if opts.Layer != nil {
		if *opts.Layer < 0 || *opts.Layer >= m.NumLayers() {
			return "", 0, 0, "", fmt.Errorf("layer %d outside [0, %d)", *opts.Layer, m.NumLayers())
		}
		layer, source = *opts.Layer, "flag"
	}
	return mode, layer, alpha, source, nil
}

// Run rewrites news lines base and steered and measures each line: faults
// (quality.Suspect against the source line and the instruction), persona
// strength (projection on the persona direction and marker words),
// fluency (perplexity under the unsteered model, steered over base) and
// content kept; then judges the run by its criteria (see Report.Criteria).
func Run(ctx context.Context, m *engine.Model, opts Options) (*Report, error) {
	if opts.Bound == 0 {
		opts.Bound = DefaultBound
	}
	all, err := NewsLines(opts.Offset + opts.Lines)
	if err != nil {
		return nil, err
	}
	if len(all) <= opts.Offset {
		return nil, fmt.Errorf("the corpus has %d lines, none after the first %d", len(all), opts.Offset)
	}
	lines := all[opts.Offset:]
	p, err := steering.PresetByName(opts.Preset)
	if err != nil {
		return nil, err
	}
	mode, layer, alpha, source, err := Setting(m, p, opts)
	if err != nil {
		return nil, err
	}
	ex, err := steering.PresetVectors(ctx, m, p, steering.MethodMean, nil)
	if err != nil {
		return nil, err
	}
	v := ex.Vectors[layer]
	st, err := steering.NewSteer(m, mode, layer, v, alpha)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	reader, err := quality.NewReader(m, layer, v)
	if err != nil {
		return nil, err
	}
	// Greedy by default: sampled, the unsteered 135M model's own text is
	// faulty in 10-30% of lines (at temperature 0.3-0.7), which hides what
	// steering does. The repetition penalty keeps greedy text out of loops.
	cfg := &sampling.GenerationConfig{DoSample: sampling.Ptr(opts.Temperature > 0), MaxNewTokens: sampling.Ptr(opts.MaxNew),
		Seed: sampling.Ptr(opts.Seed), EOSTokenID: m.Tokenizer.EOS, RepetitionPenalty: sampling.Ptr(1.1)}
	if opts.Temperature > 0 {
		cfg.Temperature, cfg.TopP = sampling.Ptr(opts.Temperature), sampling.Ptr(0.9)
	}
	rep := &Report{Lines: len(lines), Preset: p.Name, Mode: mode, Layer: layer, Alpha: alpha, Setting: source,
		ReasonsBase: map[quality.Reason]int{}, ReasonsSteered: map[quality.Reason]int{}}
	var susB, susS, same, diverge int
	var logRatio float64
	check := func(line string, ids []int) quality.Check {
		return quality.Check{Source: line, Instruction: Instruction, Ended: len(stripEOS(ids, m.Tokenizer.EOS)) < len(ids)}
	}
	for i, line := range lines {
		ids, err := Prompt(m, line)
		if err != nil {
			return nil, err
		}
		// Two unguarded runs with one seed measure determinism; the
		// guardrails, when on, act on a third.
		c1, err := steering.Compare(ctx, m, ids, cfg, st, steering.GuardOptions{}, m.Tokenizer)
		if err != nil {
			return nil, err
		}
		if !opts.SkipDeterminism {
			c2, err := steering.Compare(ctx, m, ids, cfg, st, steering.GuardOptions{}, m.Tokenizer)
			if err != nil {
				return nil, err
			}
			if fmt.Sprint(c2.Base) == fmt.Sprint(c1.Base) {
				same++
			}
		}
		if opts.Guardrail.AvoidIdentical || opts.Guardrail.ResampleSuspect {
			if c1, err = steering.Compare(ctx, m, ids, cfg, st, opts.Guardrail, m.Tokenizer); err != nil {
				return nil, err
			}
		}
		rep.Guardrails.Add(c1.Counts)
		l := Line{Source: line, Base: m.Tokenizer.Decode(c1.Base, true), Steered: m.Tokenizer.Decode(c1.Steered, true)}
		l.BaseReasons = quality.Suspect(l.Base, check(line, c1.Base))
		l.SteeredReasons = quality.Suspect(l.Steered, check(line, c1.Steered))
		if l.BaseReading, err = reader.Read(ids, stripEOS(c1.Base, m.Tokenizer.EOS)); err != nil {
			return nil, err
		}
		if l.SteeredReading, err = reader.Read(ids, stripEOS(c1.Steered, m.Tokenizer.EOS)); err != nil {
			return nil, err
		}
		l.Markers = [2]float64{quality.MarkerRate(l.Base, p.Markers), quality.MarkerRate(l.Steered, p.Markers)}
		l.ContentKept = [2]float64{quality.Kept(line, l.Base), quality.Kept(line, l.Steered)}
		l.PPLRatio = PPLRatio(l.SteeredReading.Perplexity, l.BaseReading.Perplexity)
		logRatio += math.Log(l.PPLRatio)
		if len(l.BaseReasons) > 0 {
			susB++
		}
		if len(l.SteeredReasons) > 0 {
			susS++
		}
		for _, r := range l.BaseReasons {
			rep.ReasonsBase[r]++
		}
		for _, r := range l.SteeredReasons {
			rep.ReasonsSteered[r]++
		}
		if fmt.Sprint(c1.Base) != fmt.Sprint(c1.Steered) {
			diverge++
		}
		rep.PersonaBase += l.BaseReading.Projection
		rep.PersonaSteered += l.SteeredReading.Projection
		rep.MarkersBase += l.Markers[0]
		rep.MarkersSteered += l.Markers[1]
		rep.ContentKeptBase += l.ContentKept[0]
		rep.ContentKeptSteered += l.ContentKept[1]
		rep.All = append(rep.All, l)
		if i < 3 {
			rep.Examples = append(rep.Examples, l)
		}
		if opts.Progress != nil {
			opts.Progress(i+1, len(lines))
		}
	}
	n := float64(len(lines))
	rep.SuspectRateBase, rep.SuspectRateSteered = float64(susB)/n, float64(susS)/n
	if !opts.SkipDeterminism {
		d := float64(same) / n
		rep.Determinism = &d
	}
	rep.Divergence = float64(diverge) / n
	rep.PersonaBase /= n
	rep.PersonaSteered /= n
	rep.PersonaGain = rep.PersonaSteered - rep.PersonaBase
	rep.MarkersBase /= n
	rep.MarkersSteered /= n
	rep.ContentKeptBase /= n
	rep.ContentKeptSteered /= n
	rep.PPLRatio = math.Exp(logRatio / n)
	rep.BaseLanguageKept = 1 - float64(rep.ReasonsBase[quality.Language])/n
	rep.Worst = worst(rep.All, 5)
	if opts.HFRef != "" {
		if kl, err := KLvsHF(m, opts.HFRef); err == nil {
			rep.KLvsHF = &kl
		} else if !os.IsNotExist(err) {
			return nil, err
		}
	}
	rep.judge(opts.Bound)
	return rep, nil
}

// maxRatio caps a perplexity ratio: an empty text has no perplexity (and
// JSON has no infinity); it counts as this much worse.
const maxRatio = 100

// PPLRatio is a/b, capped at 100; 100 when either side is empty.
func PPLRatio(a, b float64) float64 {
	if a <= 0 || b <= 0 || math.IsInf(a, 0) || math.IsInf(b, 0) || math.IsNaN(a) || math.IsNaN(b) {
		return maxRatio
	}
	return math.Min(a/b, maxRatio)
}

// judge sets the criteria and the overall verdict.
func (r *Report) judge(bound float64) {
	add := func(name string, v float64, target string, pass bool) {
		r.Criteria = append(r.Criteria, Criterion{Name: name, Value: v, Target: target, Pass: pass})
	}
	add("suspect rate (base)", r.SuspectRateBase, "<= 0.02", r.SuspectRateBase <= 0.02)
	add("suspect rate (steered)", r.SuspectRateSteered, "<= 0.02", r.SuspectRateSteered <= 0.02)
	if r.Determinism != nil {
		add("determinism", *r.Determinism, "= 1", *r.Determinism == 1)
	}
	add("divergence", r.Divergence, "> 0.95", r.Divergence > 0.95)
	add("base in the source's language", r.BaseLanguageKept, ">= 0.95", r.BaseLanguageKept >= 0.95)
	add("persona gain (projection)", r.PersonaGain, "> 0", r.PersonaGain > 0)
	add("fluency (ppl steered/base)", r.PPLRatio, fmt.Sprintf("<= %g", bound), r.PPLRatio <= bound)
	if r.KLvsHF != nil {
		add("kl_vs_hf", *r.KLvsHF, "<= 1e-3", *r.KLvsHF <= 1e-3)
	}
	r.Pass = true
	for _, c := range r.Criteria {
		r.Pass = r.Pass && c.Pass
	}
}

// worst picks the n steered lines with the most faults, then the highest
// perplexity ratio.
func worst(lines []Line, n int) []Line {
	out := append([]Line(nil), lines...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if len(a.SteeredReasons) != len(b.SteeredReasons) {
			return len(a.SteeredReasons) > len(b.SteeredReasons)
		}
		return a.PPLRatio > b.PPLRatio
	})
	return out[:min(n, len(out))]
}

// stripEOS drops a final end-of-sequence token (the text a reader scores
// is what the lane said, not its stop signal).
func stripEOS(ids, eos []int) []int {
	if len(ids) > 0 {
		for _, e := range eos {
			if ids[len(ids)-1] == e {
				return ids[:len(ids)-1]
			}
		}
	}
	return ids
}

// KLvsHF is the mean KL(HF || genkit) of next-token distributions over the
// prompts stored in ref (top-k log-probs from transformers).
func KLvsHF(m *engine.Model, ref string) (float64, error) {
	data, err := os.ReadFile(ref)
	if err != nil {
		return 0, err
	}
	var r struct {
		Prompts []struct {
			Tokens      []int     `json:"tokens"`
			TopIDs      []int     `json:"top_ids"`
			TopLogProbs []float64 `json:"top_logprobs"`
		} `json:"prompts"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return 0, fmt.Errorf("%s: %w", ref, err)
	}
	var sum float64
	for _, p := range r.Prompts {
		lanes, err := m.Logits(p.Tokens, 1, false, nil)
		if err != nil {
			return 0, err
		}
		sum += sampling.KLFromTop(p.TopIDs, p.TopLogProbs, lanes[0][0])
	}
	return sum / float64(len(r.Prompts)), nil
}
