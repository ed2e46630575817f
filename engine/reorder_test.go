package engine_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
)

// scriptedBeams is a BeamChooser that plays fixed (ids, src) steps and
// records the logits and histories it is shown.
type scriptedBeams struct {
	t       *testing.T
	ids     [][]int
	src     [][]int
	doneAt  int
	logits  [][][]float32 // per step, per lane
	history [][][]int
}

func (c *scriptedBeams) Choose(*mlx.Array, int, [][]int) ([]int, error) {
	c.t.Error("Choose called for a BeamChooser")
	return nil, fmt.Errorf("not a plain chooser")
}

func (c *scriptedBeams) ChooseBeams(logits *mlx.Array, step int, history [][]int) ([]int, []int, bool, error) {
	flat, err := logits.Float32s()
	if err != nil {
		return nil, nil, false, err
	}
	V := logits.Dim(1)
	var rows [][]float32
	var hist [][]int
	for b := range history {
		rows = append(rows, flat[b*V:(b+1)*V])
		hist = append(hist, append([]int(nil), history[b]...))
	}
	c.logits = append(c.logits, rows)
	c.history = append(c.history, hist)
	return c.ids[step], c.src[step], step == c.doneAt, nil
}

// A BeamChooser must never be sent down the device path.
func (c *scriptedBeams) StartDevice([][]int, int) (bool, error) {
	c.t.Error("StartDevice called for a BeamChooser")
	return false, nil
}
func (c *scriptedBeams) ChooseDevice(*mlx.Array, int) (*mlx.Array, error) {
	return nil, fmt.Errorf("device path")
}
func (c *scriptedBeams) EndDevice() {}

func rowDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

// TestGenerateReordersBeamLanes checks the BeamChooser path: lanes' caches,
// histories and tokens follow src (a swap, then a duplicated lane), end ids
// and stop tests are ignored, and the chooser's done ends the generation.
func TestGenerateReordersBeamLanes(t *testing.T) {
	m := load(t, hfDir("llama_tied"), engine.LoadOptions{})
	prompt := []int{1, 2, 3}
	seq := func(gen ...int) []int { return append(append([]int(nil), prompt...), gen...) }
	last := func(ids []int) []float32 {
		l, _ := forward(t, m, ids, nil)
		return l[len(l)-1]
	}
	want75, want36, want369 := last(seq(7, 5)), last(seq(3, 6)), last(seq(3, 6, 9))

	c := &scriptedBeams{t: t,
		ids:    [][]int{{3, 7}, {5, 6}, {9, 9}, {1, 2}},
		src:    [][]int{{0, 1}, {1, 0}, {1, 1}, {0, 1}},
		doneAt: 3}
	res, st, err := m.Generate(context.Background(), engine.Request{Prompt: prompt, Lanes: 2, MaxNewTokens: 10,
		Chooser: c, EOS: []int{3, 5, 9}, Stop: func(int, []int) bool { return true }, Sync: false})
	if err != nil {
		t.Fatal(err)
	}
	if st.Steps != 4 || len(c.logits) != 4 {
		t.Fatalf("%d steps, chooser called %d times; want 4", st.Steps, len(c.logits))
	}
	wantTok := [][]int{{3, 6, 9, 1}, {3, 6, 9, 2}}
	for b, r := range res {
		if fmt.Sprint(r.Tokens) != fmt.Sprint(wantTok[b]) || r.Finished != "done" {
			t.Errorf("lane %d: %v (%s), want %v (done)", b, r.Tokens, r.Finished, wantTok[b])
		}
	}
	// Step 2 sees lane 0 = [7 5] (from lane 1), lane 1 = [3 6] (from lane 0).
	if h := c.history[2]; fmt.Sprint(h) != fmt.Sprint([][]int{seq(7, 5), seq(3, 6)}) {
		t.Errorf("step 2 histories %v", h)
	}
	if d := rowDiff(c.logits[2][0], want75); d > 1e-4 {
		t.Errorf("step 2 lane 0: logits differ from [7 5] by %g", d)
	}
	if d := rowDiff(c.logits[2][1], want36); d > 1e-4 {
		t.Errorf("step 2 lane 1: logits differ from [3 6] by %g", d)
	}
	// Step 3: both lanes continue lane 1 with 9.
	for b := 0; b < 2; b++ {
		if fmt.Sprint(c.history[3][b]) != fmt.Sprint(seq(3, 6, 9)) {
			t.Errorf("step 3 lane %d history %v", b, c.history[3][b])
		}
		if d := rowDiff(c.logits[3][b], want369); d > 1e-4 {
			t.Errorf("step 3 lane %d: logits differ from [3 6 9] by %g", b, d)
		}
	}

	// Without done the token budget ends it; a bad source lane is an error.
	c = &scriptedBeams{t: t, ids: [][]int{{3, 7}, {5, 6}}, src: [][]int{{0, 1}, {1, 0}}, doneAt: -1}
	res, _, err = m.Generate(context.Background(), engine.Request{Prompt: prompt, Lanes: 2, MaxNewTokens: 2, Chooser: c})
	if err != nil || res[0].Finished != "length" || fmt.Sprint(res[0].Tokens) != "[7 5]" {
		t.Fatalf("budget: %v, %+v", err, res)
	}
	c = &scriptedBeams{t: t, ids: [][]int{{3, 7}}, src: [][]int{{0, 2}}, doneAt: -1}
	if _, _, err := m.Generate(context.Background(), engine.Request{Prompt: prompt, Lanes: 2, MaxNewTokens: 4, Chooser: c}); err == nil || !strings.Contains(err.Error(), "source lane 2") {
		t.Fatalf("bad source lane: %v", err)
	}
}
