package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/sessions"
	"github.com/mlx-genkit/genkit/steering"
	"github.com/mlx-genkit/genkit/tui"
)

// TestSavedSessionDecodesAlikeInTUIAndCLI: one saved session (sampled, with
// penalties, an explicit alpha, an auto layer and a schedule) decoded by the
// TUI's runner and by `genkit generate --session` gives the same tokens in
// both lanes, because both go through steering.Decode. A change to the
// settings (another seed) must change the tokens, so equality is no
// accident of greedy text.
func TestSavedSessionDecodesAlikeInTUIAndCLI(t *testing.T) {
	t.Setenv("GENKIT_DATA_DIR", t.TempDir())
	path, err := engine.DefaultModelPath()
	if err != nil {
		t.Fatal(err)
	}
	s := tui.DefaultSettings()
	s.Prompt, s.System = "Describe a harbour at dawn.", "Answer in two sentences."
	s.Steering.Alpha = sampling.Ptr(1.5)
	s.Steering.Schedule = steering.Schedule{Kind: "warmup", Steps: 4}
	s.Gen = sampling.GenerationConfig{DoSample: sampling.Ptr(true), Temperature: sampling.Ptr(0.8), TopP: sampling.Ptr(0.9),
		RepetitionPenalty: sampling.Ptr(1.1), MaxNewTokens: sampling.Ptr(24), Seed: sampling.Ptr(uint64(7))}
	if err := sessions.Save(s.ToSession("harbour", path)); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) [2][]int {
		out, err := run(t, append([]string{"generate", "--session", "harbour", "--json"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Base, Steered struct{ Tokens []int }
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return [2][]int{doc.Base.Tokens, doc.Steered.Tokens}
	}
	fromCLI := cli()

	m, err := engine.Load(context.Background(), path, engine.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	saved, err := sessions.Load("harbour")
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan tea.Msg, 1024)
	r := tui.NewRunner(m, nil, func(msg tea.Msg) { msgs <- msg })
	r.Start(tui.FromSession(saved))
	var final tui.SnapshotMsg
	for done := false; !done; {
		select {
		case msg := <-msgs:
			if snap, ok := msg.(tui.SnapshotMsg); ok && snap.Done {
				final, done = snap, true
			}
		case <-time.After(3 * time.Minute):
			t.Fatal("the TUI run did not finish")
		}
	}
	if final.Err != nil {
		t.Fatal(final.Err)
	}
	fromTUI := [2][]int{final.Lanes[0].Tokens, final.Lanes[1].Tokens}
	if fmt.Sprint(fromTUI) != fmt.Sprint(fromCLI) {
		t.Fatalf("the TUI and the CLI decode the session differently:\nTUI %v\nCLI %v", fromTUI, fromCLI)
	}
	if fmt.Sprint(fromCLI[0]) == fmt.Sprint(fromCLI[1]) {
		t.Fatalf("steering changed nothing: %v", fromCLI)
	}
	if other := cli("--seed", "8"); fmt.Sprint(other) == fmt.Sprint(fromCLI) {
		t.Fatalf("another seed gave the same tokens: the comparison cannot fail")
	}
}
