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
	m, err := engine.Open(ctx, modelSpec, engine.LoadOptions{}, nil)
	if err != nil {
		return err
	}
	defer m.Close()

	// The plan: the preset's persona direction at its suggested layer, with
	// the preset's alpha unless one is given. Decode resolves it once (the
	// vector is computed on first use and cached) and steers lane 1.
	plan := steering.DefaultPlan()
	plan.Preset = presetName
	if alpha != 0 {
		plan.Alpha = &alpha
	}
	gen, err := steering.Generation(m, &sampling.GenerationConfig{DoSample: sampling.Ptr(true), Temperature: sampling.Ptr(0.7),
		TopP: sampling.Ptr(0.9), MaxNewTokens: sampling.Ptr(maxNew), Seed: sampling.Ptr(uint64(1))})
	if err != nil {
		return err
	}
	for _, line := range readLines() {
		out, err := steering.Decode(ctx, m, steering.Run{Prompt: engine.Prompt{Text: "Rewrite this news line in one sentence:\n" + line, Chat: true},
			Plan: &plan, Gen: gen}, steering.Observers{})
		if err != nil {
			return err
		}
		fmt.Printf("news:    %s\nplain:   %s\n%-8s %s\n\n", line, out.Lanes[0].Text, presetName+":", out.Lanes[1].Text)
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
