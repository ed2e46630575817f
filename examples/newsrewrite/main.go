// Command newsrewrite rewrites news lines in a persona with genkit's public
// library API only: load a model, make a persona vector, add it after a
// decoder block with a residual hook, and generate with a Hugging Face style
// GenerationConfig.
//
//	go run ./examples/newsrewrite --preset pirate < lines.txt
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/steering"
)

func main() {
	model := flag.String("model", "", "model path or hub id (default: genkit's default model)")
	preset := flag.String("preset", "pirate", "persona preset")
	alpha := flag.Float64("alpha", 0, "steering strength (0: the preset's suggestion)")
	maxNew := flag.Int("max-new-tokens", 40, "tokens per rewrite")
	flag.Parse()
	if err := run(*model, *preset, *alpha, *maxNew); err != nil {
		fmt.Fprintln(os.Stderr, "newsrewrite:", err)
		os.Exit(1)
	}
}

func run(modelSpec, presetName string, alpha float64, maxNew int) error {
	ctx := context.Background()
	path, err := engine.ResolveModel(modelSpec, nil)
	if err != nil {
		return err
	}
	var m *engine.Model
	if err := mlx.Do(func() error {
		m, err = engine.LoadModel(path, engine.LoadOptions{})
		return err
	}); err != nil {
		return err
	}
	defer mlx.Do(func() error { m.Free(); return nil })

	// A persona direction per layer, from the preset's contrastive prompts.
	p, err := steering.PresetByName(presetName)
	if err != nil {
		return err
	}
	vectors, err := steering.PresetVectors(ctx, m, p, steering.MethodMean, nil)
	if err != nil {
		return err
	}
	layer := p.Layer(m.NumLayers())
	if alpha == 0 {
		alpha = p.Alpha
	}
	// The residual hook: alpha * v after block `layer`, on lane 1 only.
	var hook *steering.Injection
	if err := mlx.Do(func() error {
		hook, err = steering.NewInjection(m, map[int][]float32{layer: vectors.Vectors[layer]}, steering.InjectionOptions{Alpha: alpha})
		return err
	}); err != nil {
		return err
	}
	defer mlx.Do(func() error { hook.Free(); return nil })

	cfg := &sampling.GenerationConfig{DoSample: sampling.Ptr(true), Temperature: sampling.Ptr(0.7), TopP: sampling.Ptr(0.9),
		MaxNewTokens: sampling.Ptr(maxNew), Seed: sampling.Ptr(uint64(1)), EOSTokenID: m.Tokenizer.EOS}

	lines := readLines()
	for _, line := range lines {
		text, err := m.ApplyChatTemplate([]engine.Message{{Role: "user", Content: "Rewrite this news line in one sentence:\n" + line}}, true)
		if err != nil {
			return err
		}
		prompt, err := m.Tokenizer.Encode(text, false)
		if err != nil {
			return err
		}
		sampler, err := sampling.NewSampler(cfg, 2, sampling.SamplerOptions{})
		if err != nil {
			return err
		}
		res, _, err := m.Generate(ctx, engine.Request{Prompt: prompt, Lanes: 2, MaxNewTokens: cfg.MaxNew(len(prompt)),
			Chooser: sampler, Hook: hook, EOS: cfg.EOSTokenID})
		if err != nil {
			return err
		}
		fmt.Printf("news:    %s\nplain:   %s\n%-8s %s\n\n", line, m.Tokenizer.Decode(res[0].Tokens, true),
			p.Name+":", m.Tokenizer.Decode(res[1].Tokens, true))
	}
	return nil
}

// readLines takes news lines from standard input, or two built-in ones when
// it is a terminal.
func readLines() []string {
	if st, err := os.Stdin.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
		return []string{
			"Oil prices fell sharply on Monday as traders worried about rising inventories.",
			"The central bank left interest rates unchanged, citing steady inflation.",
		}
	}
	var out []string
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}
