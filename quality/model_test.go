package quality_test

import (
	"context"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
	"github.com/mlx-genkit/genkit/quality"
	"github.com/mlx-genkit/genkit/steering"
)

// TestReader: on the default model, a fluent rewrite reads with a lower
// perplexity than its words shuffled and than letter noise, and a pirate
// rewrite projects further on the pirate direction than a plain one (and a
// Shakespearean one further on the Shakespearean direction): the measures
// separate what they claim to.
func TestReader(t *testing.T) {
	path, err := engine.DefaultModelPath()
	if err != nil {
		t.Fatal(err)
	}
	var m *engine.Model
	if err := mlx.Do(context.Background(), func() error { var err error; m, err = engine.LoadModel(path, engine.LoadOptions{}); return err }); err != nil {
		t.Fatal(err)
	}
	defer mlx.Do(context.Background(), func() error { m.Free(); return nil })
	chat, err := m.ApplyChatTemplate([]engine.Message{{Role: "user", Content: "Rewrite this news line in your own words, in one sentence:\nOil prices rose 2 pct on Monday after OPEC agreed to cut output."}}, true)
	if err != nil {
		t.Fatal(err)
	}
	prompt, _ := m.Tokenizer.Encode(chat, false)
	texts := map[string]string{
		"plain":   "Oil prices climbed 2 pct on Monday after OPEC decided to reduce its output.",
		"shuffle": "OPEC its Monday reduce climbed output after on to prices decided pct Oil 2.",
		"noise":   "xq zvv blorf qqq wexk trunp ghh zzkl vvq oi pprt.",
		"pirate":  "Arr, matey, the price o' black gold climbed 2 pct on Monday, for OPEC be cuttin' its output, ye landlubbers!",
		"bard":    "Hark! On Monday the price of oil didst climb, for OPEC hath agreed to stint its flow, forsooth.",
	}
	read := func(p string, layer int, v []float32) map[string]quality.Reading {
		out := map[string]quality.Reading{}
		err := mlx.Do(context.Background(), func() error {
			r, err := quality.NewReader(m, layer, v)
			if err != nil {
				return err
			}
			for k, text := range texts {
				ids, _ := m.Tokenizer.Encode(text, false)
				if out[k], err = r.Read(prompt, ids); err != nil {
					return err
				}
			}
			return nil
		})

		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	vec := func(name string) (int, []float32) {
		p, err := steering.PresetByName(name)
		if err != nil {
			t.Fatal(err)
		}
		ex, err := steering.PresetVectors(context.Background(), m, p, steering.MethodMean, nil)
		if err != nil {
			t.Fatal(err)
		}
		l := p.Layer(m.NumLayers())
		return l, ex.Vectors[l]
	}
	l, v := vec("pirate")
	r := read("pirate", l, v)
	if !(r["plain"].Perplexity < r["shuffle"].Perplexity && r["shuffle"].Perplexity < r["noise"].Perplexity) {
		t.Errorf("perplexity plain %.1f, shuffled %.1f, noise %.1f: want increasing", r["plain"].Perplexity, r["shuffle"].Perplexity, r["noise"].Perplexity)
	}
	if r["pirate"].Projection <= r["plain"].Projection {
		t.Errorf("pirate direction: pirate text %.3f, plain %.3f", r["pirate"].Projection, r["plain"].Projection)
	}
	l, v = vec("shakespearean")
	r = read("shakespearean", l, v)
	if r["bard"].Projection <= r["plain"].Projection {
		t.Errorf("Shakespearean direction: bard text %.3f, plain %.3f", r["bard"].Projection, r["plain"].Projection)
	}
	if err := mlx.Do(context.Background(), func() error { _, err := quality.NewReader(m, l, make([]float32, m.HiddenSize())); return err }); err == nil {
		t.Error("a zero direction was accepted")
	}
}
