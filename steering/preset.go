package steering

import (
	"embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/mlx-genkit/genkit/engine"
)

//go:embed presets/*.json
var presetFiles embed.FS

// Preset is a persona defined by contrastive system prompts: each question
// is asked under a positive (persona) and a negative (opposite) system
// prompt, and the difference of the hidden states is the persona direction.
type Preset struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Positive    []string `json:"positive"`
	Negative    []string `json:"negative"`
	Questions   []string `json:"questions"`
	// LayerFraction suggests the steering layer as a fraction of the depth.
	LayerFraction float64 `json:"layer_fraction"`
	// Alpha suggests a strength for the mean-difference vector.
	Alpha float64 `json:"alpha"`
	// Markers are words and phrases typical of the persona (what
	// quality.MarkerRate counts); empty where the persona is no vocabulary
	// (terse).
	Markers []string `json:"markers"`
}

// Presets lists the shipped presets by name.
func Presets() ([]Preset, error) {
	entries, err := presetFiles.ReadDir("presets")
	if err != nil {
		return nil, err
	}
	var out []Preset
	for _, e := range entries {
		data, err := presetFiles.ReadFile("presets/" + e.Name())
		if err != nil {
			return nil, err
		}
		var p Preset
		if err := json.Unmarshal(data, &p); err != nil {
			return nil, fmt.Errorf("preset %s: %w", e.Name(), err)
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// PresetByName finds a shipped preset.
func PresetByName(name string) (*Preset, error) {
	all, err := Presets()
	if err != nil {
		return nil, err
	}
	var names []string
	for i := range all {
		if all[i].Name == name {
			return &all[i], nil
		}
		names = append(names, all[i].Name)
	}
	return nil, fmt.Errorf("no preset %q (have %s)", name, strings.Join(names, ", "))
}

// Layer is the suggested steering layer for a model of n blocks.
func (p *Preset) Layer(n int) int {
	f := p.LayerFraction
	if f <= 0 || f >= 1 {
		f = 0.5
	}
	return min(n-1, max(0, int(f*float64(n))))
}

// Pairs renders the preset's prompts with m's chat template (or plain text
// when it has none) and tokenizes them: one pair per question and system
// prompt pair.
func (p *Preset) Pairs(m *engine.Model) ([]Pair, error) {
	if m.Tokenizer == nil {
		return nil, fmt.Errorf("preset %s: the model has no tokenizer", p.Name)
	}
	n := min(len(p.Positive), len(p.Negative))
	if n == 0 || len(p.Questions) == 0 {
		return nil, fmt.Errorf("preset %s: needs positive and negative prompts and questions", p.Name)
	}
	var pairs []Pair
	for _, q := range p.Questions {
		for i := 0; i < n; i++ {
			pos, err := chatIDs(m, p.Positive[i], q)
			if err != nil {
				return nil, err
			}
			neg, err := chatIDs(m, p.Negative[i], q)
			if err != nil {
				return nil, err
			}
			pairs = append(pairs, Pair{Positive: pos, Negative: neg})
		}
	}
	return pairs, nil
}

func chatIDs(m *engine.Model, system, user string) ([]int, error) {
	return m.EncodePrompt(engine.Prompt{Text: user, System: system, Chat: true})
}

// TextPairs tokenizes paired positive and negative texts (one pair per
// line index).
func TextPairs(m *engine.Model, positive, negative []string) ([]Pair, error) {
	if m.Tokenizer == nil {
		return nil, fmt.Errorf("the model has no tokenizer")
	}
	if len(positive) != len(negative) || len(positive) == 0 {
		return nil, fmt.Errorf("contrastive texts: %d positive and %d negative; want the same number, at least one", len(positive), len(negative))
	}
	var pairs []Pair
	for i := range positive {
		pos, err := m.Tokenizer.Encode(positive[i], true)
		if err != nil {
			return nil, err
		}
		neg, err := m.Tokenizer.Encode(negative[i], true)
		if err != nil {
			return nil, err
		}
		pairs = append(pairs, Pair{Positive: pos, Negative: neg})
	}
	return pairs, nil
}
