package tui

import (
	"context"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/steering"
)

// loadDefault loads the default model for a test or benchmark and frees it
// when tb ends.
func loadDefault(tb testing.TB) *engine.Model {
	tb.Helper()
	path, err := engine.DefaultModelPath()
	if err != nil {
		tb.Fatal(err)
	}
	m, err := engine.Load(context.Background(), path, engine.LoadOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(m.Close)
	return m
}

// uiHarness is the UI model with a runner whose messages go through Update
// and a full render, as Bubble Tea does for every message.
type uiHarness struct {
	md   *Model
	msgs chan tea.Msg
}

func newHarness(b *testing.B, m *engine.Model, s Settings) *uiHarness {
	h := &uiHarness{msgs: make(chan tea.Msg, 1024)}
	h.md = New(Options{Settings: s, Theme: "dark"})
	h.md.SetSend(func(msg tea.Msg) { h.msgs <- msg })
	h.md.Update(loaded(m, nil))
	h.md.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	return h
}

// until feeds messages to the model until done says so.
func (h *uiHarness) until(done func(tea.Msg) bool) {
	for msg := range h.msgs {
		h.md.Update(msg)
		_ = h.md.render()
		if done(msg) {
			return
		}
	}
}

func benchSettings() Settings {
	s := DefaultSettings()
	s.Gen.MaxNewTokens = sampling.Ptr(32)
	return s
}

// BenchmarkKeyToFirstToken: from the key that changes alpha to the first
// token of the new run on screen (the 300 ms debounce excluded: the tick is
// delivered at once).
func BenchmarkKeyToFirstToken(b *testing.B) {
	m := loadDefault(b)
	h := newHarness(b, m, benchSettings())
	// Warm the preset vector cache and the first run.
	h.md.startRun()
	h.until(func(msg tea.Msg) bool { s, ok := msg.(SnapshotMsg); return ok && s.Done })
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		h.md.Update(tea.KeyPressMsg{Code: ']', Text: "]"})
		h.md.Update(debounceMsg{gen: h.md.gen})
		id := h.md.runID
		h.until(func(msg tea.Msg) bool {
			s, ok := msg.(SnapshotMsg)
			return ok && s.RunID == id && len(s.Lanes) > 1 && len(s.Lanes[1].Tokens) > 0
		})
		b.ReportMetric(float64(time.Since(t0).Milliseconds()), "ms/key-to-token")
		h.md.runner.Stop()
		h.md.Update(tea.KeyPressMsg{Code: '[', Text: "["})
		h.md.dirty = false
	}
}

// BenchmarkDecodeHeadless decodes 32 tokens base+steered with the engine
// alone; BenchmarkDecodeUI does the same through the runner and the UI model
// (snapshots, Update and render for each message).
func BenchmarkDecodeHeadless(b *testing.B) {
	m := loadDefault(b)
	s := benchSettings()
	p, _ := steering.PresetByName("pirate")
	ex, err := steering.PresetVectors(context.Background(), m, p, steering.MethodMean, nil)
	if err != nil {
		b.Fatal(err)
	}
	L := p.Layer(m.NumLayers())
	var inj *steering.Injection
	if err := mlx.Do(context.Background(), func() error {
		inj, err = steering.NewInjection(m, map[int][]float32{L: ex.Vectors[L]}, steering.InjectionOptions{Alpha: 1, LaneScale: []float64{0, 1}})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	ids, _ := m.EncodePrompt(engine.Prompt{Text: s.Prompt, System: s.System, Chat: s.Chat})
	var steps int
	var elapsed time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cfg := s.Gen
		cfg.EOSTokenID = m.Tokenizer.EOS
		smp, _ := sampling.NewSampler(&cfg, 2, sampling.SamplerOptions{})
		t0 := time.Now()
		res, _, err := m.Generate(context.Background(), engine.Request{Prompt: ids, Lanes: 2, MaxNewTokens: 32, Chooser: smp, Hook: inj, IgnoreEOS: true})
		if err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(t0)
		steps += len(res[0].Tokens)
	}
	b.ReportMetric(float64(steps)/elapsed.Seconds(), "steps/s")
}

func BenchmarkDecodeUI(b *testing.B) {
	m := loadDefault(b)
	h := newHarness(b, m, benchSettings())
	var steps int
	var elapsed time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		h.md.startRun()
		var last SnapshotMsg
		h.until(func(msg tea.Msg) bool {
			s, ok := msg.(SnapshotMsg)
			if ok && s.Done {
				last = s
			}
			return ok && s.Done
		})
		if last.Err != nil {
			b.Fatal(last.Err)
		}
		elapsed += time.Since(t0)
		steps += last.Steps
	}
	b.ReportMetric(float64(steps)/elapsed.Seconds(), "steps/s")
}
