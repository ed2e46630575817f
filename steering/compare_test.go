package steering_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/mlx-genkit/genkit/mlx"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/steering"
)

// TestCompareGuardrails: a zero-strength steer makes both lanes share the
// logits, so with separate streams they may differ only by sampling; with
// avoid-identical on, a greedy identical pair is resampled and counted.
func TestCompareGuardrails(t *testing.T) {
	m := loadModel(t, filepath.Join("..", "engine", "testdata", "hf", "llama_tied"))
	v := make([]float32, m.HiddenSize())
	var inj *steering.Injection
	if err := mlx.Do(context.Background(), func() error {
		var err error
		inj, err = steering.NewInjection(m, map[int][]float32{1: v}, steering.InjectionOptions{Alpha: 0})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer mlx.Do(context.Background(), func() error { inj.Free(); return nil })
	greedy := &sampling.GenerationConfig{MaxNewTokens: sampling.Ptr(6)}
	c, err := steering.Compare(context.Background(), m, []int{5, 6, 7}, greedy, steering.Steer{Injection: inj}, steering.GuardOptions{AvoidIdentical: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Counts.IdenticalResampled != 1 || c.Counts.SeedSeparated != 0 {
		t.Fatalf("greedy, zero steer: counts %+v", c.Counts)
	}
	sampled := &sampling.GenerationConfig{MaxNewTokens: sampling.Ptr(12), DoSample: sampling.Ptr(true), TopK: sampling.Ptr(0), Temperature: sampling.Ptr(2.0), Seed: sampling.Ptr(uint64(3))}
	c, err = steering.Compare(context.Background(), m, []int{5, 6, 7}, sampled, steering.Steer{Injection: inj}, steering.GuardOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Counts.SeedSeparated != 1 || fmt.Sprint(c.Base) == fmt.Sprint(c.Steered) {
		t.Fatalf("seed separation: %+v, base %v steered %v", c.Counts, c.Base, c.Steered)
	}
}
