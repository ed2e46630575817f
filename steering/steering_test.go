package steering_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/mlx"
	"github.com/mlx-genkit/genkit/steering"
)

func TestSchedules(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want []float64 // alpha(t) for t = 0..4 with base alpha 2
	}{
		{"constant", []float64{2, 2, 2, 2, 2}},
		{"warmup:4", []float64{0.5, 1, 1.5, 2, 2}},
		{"ramp:0:8:4", []float64{0, 2, 4, 6, 8}},
		{"window:1:3", []float64{0, 2, 2, 0, 0}},
		{"window:2:0", []float64{0, 0, 2, 2, 2}},
	} {
		s, err := steering.ParseSchedule(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range tc.want {
			if got := s.Alpha(2, i); math.Abs(got-w) > 1e-12 {
				t.Errorf("%s: alpha(%d) = %g, want %g", tc.spec, i, got, w)
			}
		}
		back, err := steering.ParseSchedule(s.String())
		if err != nil || back != s {
			t.Errorf("%s: round trip through %q gave %+v, %v", tc.spec, s.String(), back, err)
		}
	}
	for _, bad := range []string{"warmup", "warmup:-1", "ramp:1:2", "window:5:3", "sine:3"} {
		if _, err := steering.ParseSchedule(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestVectorFiles(t *testing.T) {
	dir := t.TempDir()
	vs := &steering.VectorSet{Vectors: map[int][]float32{3: {1, -2, 0.5, 4}, 15: {0.25, 0, -1, 8}}, ModelHint: "llama"}
	err := mlx.Do(context.Background(), func() error {
		for _, name := range []string{"v.gguf", "v.safetensors"} {
			p := filepath.Join(dir, name)
			if err := vs.Save(p); err != nil {
				return err
			}
			back, err := steering.LoadVectors(p, 0)
			if err != nil {
				return err
			}
			if fmt.Sprint(back.Vectors) != fmt.Sprint(vs.Vectors) {
				return fmt.Errorf("%s: read back %v, wrote %v", name, back.Vectors, vs.Vectors)
			}
		}

		arrays, meta, err := mlx.LoadGGUF(filepath.Join(dir, "v.gguf"))
		if err != nil {
			return err
		}
		defer func() {
			for _, a := range arrays {
				a.Free()
			}
		}()
		if _, ok := arrays["direction.15"]; !ok || len(arrays) != 2 || meta["general.architecture"].String != "controlvector" || meta["controlvector.model_hint"].String != "llama" {
			return fmt.Errorf("control vector layout: %v / %v", keys(arrays), meta)
		}
		if n, ok := meta["controlvector.layer_count"].Int(); !ok || n != 2 {
			return fmt.Errorf("layer_count %v", meta["controlvector.layer_count"])
		}

		v5, _ := mlx.FromFloat32s([]float32{9, 8, 7, 6})
		defer v5.Free()
		if err := mlx.SaveGGUF(filepath.Join(dir, "cpp.gguf"), map[string]*mlx.Array{"direction.5": v5},
			map[string]string{"general.architecture": "controlvector"}, nil); err != nil {
			return err
		}
		got, err := steering.LoadVectors(filepath.Join(dir, "cpp.gguf"), 0)
		if err != nil {
			return err
		}
		if len(got.Vectors) != 1 || fmt.Sprint(got.Vectors[5]) != "[9 8 7 6]" {
			return fmt.Errorf("direction.5 read as %v", got.Vectors)
		}

		one := &steering.VectorSet{Vectors: map[int][]float32{7: {1, 2, 3, 4}}}
		if err := one.Save(filepath.Join(dir, "v.npy")); err != nil {
			return err
		}
		npy, err := steering.LoadVectors(filepath.Join(dir, "v.npy"), 7)
		if err != nil || fmt.Sprint(npy.Vectors) != "map[7:[1 2 3 4]]" {
			return fmt.Errorf("npy: %v %v", npy, err)
		}
		return nil
	})

	if err != nil {
		t.Fatal(err)
	}
	// Wrong size, NaN and Inf are refused with the layer named.
	for _, tc := range []struct {
		v    []float32
		want string
	}{
		{[]float32{1, 2, 3}, "3 values"},
		{[]float32{1, float32(math.NaN()), 3, 4}, "NaN"},
		{[]float32{1, 2, float32(math.Inf(1)), 4}, "Inf"},
	} {
		err := (&steering.VectorSet{Vectors: map[int][]float32{2: tc.v}}).Check(4)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "layer 2") {
			t.Errorf("%v: %v", tc.v, err)
		}
	}
	if err := mlx.Do(context.Background(), func() error {
		os.WriteFile(filepath.Join(dir, "junk.gguf"), []byte("nonsense"), 0o644)
		_, err := steering.LoadVectors(filepath.Join(dir, "junk.gguf"), 0)
		if err == nil || !strings.Contains(err.Error(), "junk.gguf") {
			return fmt.Errorf("corrupt file: %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func keys(m map[string]*mlx.Array) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestNormPreservingAndBadLayer(t *testing.T) {
	m := loadModel(t, filepath.Join("..", "engine", "testdata", "hf", "llama_tied"))
	v := make([]float32, m.HiddenSize())
	for i := range v {
		v[i] = float32(i%7) - 3
	}
	err := mlx.Do(context.Background(), func() error {
		if _, err := steering.NewInjection(m, map[int][]float32{7: v}, steering.InjectionOptions{Alpha: 1}); err == nil || !strings.Contains(err.Error(), "layer 7") {
			return fmt.Errorf("out-of-range layer: %v", err)
		}
		if _, err := steering.NewInjection(m, map[int][]float32{0: v[:10]}, steering.InjectionOptions{Alpha: 1}); err == nil || !strings.Contains(err.Error(), "hidden size") {
			return fmt.Errorf("short vector: %v", err)
		}
		inj, err := steering.NewInjection(m, map[int][]float32{-1: v}, steering.InjectionOptions{Alpha: 5, Normalize: true})
		if err != nil {
			return err
		}
		defer inj.Free()
		if fmt.Sprint(inj.Layers()) != fmt.Sprint([]int{m.NumLayers() - 1}) {
			return fmt.Errorf("layer -1 resolved to %v", inj.Layers())
		}
		s := mlx.NewScope()
		defer s.Close()
		h := s.Track(mlx.FromFloat32s(v[:], 1, 1, len(v)))
		h2 := s.Track(mlx.Full(0.5, mlx.Float32, 2, 1, len(v)))
		h = s.Track(mlx.Concatenate(0, h, s.Track(mlx.Reshape(s.Track(mlx.Slice(h2, []int{0, 0, 0}, []int{1, 1, len(v)}, nil)), 1, 1, len(v)))))
		out, err := inj.AfterBlock(s, m.NumLayers()-1, h, engine.Step{Len: 1, Index: 3})
		if err != nil {
			return err
		}
		a, _ := h.Float32s()
		b, _ := out.Float32s()
		D := len(v)
		for lane := 0; lane < 2; lane++ {
			na, nb := norm(a[lane*D:(lane+1)*D]), norm(b[lane*D:(lane+1)*D])
			if math.Abs(na-nb) > 1e-4*na {
				return fmt.Errorf("lane %d: norm %g became %g", lane, na, nb)
			}
		}
		if fmt.Sprint(a[D:]) == fmt.Sprint(b[D:]) {
			return fmt.Errorf("the steered lane did not change")
		}
		if fmt.Sprint(a[:D]) != fmt.Sprint(b[:D]) {
			return fmt.Errorf("the base lane changed")
		}
		return nil
	})

	if err != nil {
		t.Fatal(err)
	}
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

// TestPresetSteersTheDefaultModel: with the pirate preset at its suggested
// layer and alpha, the steered lane differs from the base on more than 95%
// of 20 prompts; alpha 1e6 ends with a clear error.
func TestPresetSteersTheDefaultModel(t *testing.T) {
	t.Setenv("GENKIT_CACHE_DIR", t.TempDir())
	path, err := engine.DefaultModelPath()
	if err != nil {
		t.Fatal(err)
	}
	m := loadModel(t, path)
	p, err := steering.PresetByName("pirate")
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	ex, err := steering.PresetVectors(context.Background(), m, p, steering.MethodMean, func(done, total int) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 {
		t.Fatal("no progress reported")
	}
	again, err := steering.PresetVectors(context.Background(), m, p, steering.MethodMean, nil)
	if err != nil {
		t.Fatal(err)
	}
	L := p.Layer(m.NumLayers())
	if fmt.Sprint(again.Vectors[L]) != fmt.Sprint(ex.Vectors[L]) || again.Separation[L] != ex.Separation[L] {
		t.Fatal("the cached vectors differ from the computed ones")
	}
	t.Logf("pirate: layer %d of %d, separation %.2f (best layer %d, %.2f)", L, m.NumLayers(), ex.Separation[L], ex.BestLayer(), ex.Separation[ex.BestLayer()])

	questions := []string{"How do I bake bread?", "What is the capital of Japan?", "Tell me about the moon.",
		"Give me three tips for better sleep.", "Why is the sky blue?", "What should I cook tonight?",
		"Explain how rain forms.", "Describe your ideal holiday.", "What is a good name for a dog?",
		"How do airplanes fly?", "What is the best way to learn a language?", "Tell me a fun fact about cats.",
		"How do I fix a flat tyre?", "What is photosynthesis?", "Recommend a good book.",
		"What do you like about mornings?", "How far away is the sun?", "What is your favourite colour?",
		"How do I write a cover letter?", "What makes a good friend?"}
	var inj *steering.Injection
	if err := mlx.Do(context.Background(), func() error {
		inj, err = steering.NewInjection(m, map[int][]float32{L: ex.Vectors[L]}, steering.InjectionOptions{Alpha: p.Alpha})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer mlx.Do(context.Background(), func() error { inj.Free(); return nil })
	differ := 0
	for i, q := range questions {
		text, err := m.ApplyChatTemplate([]engine.Message{{Role: "user", Content: q}}, true)
		if err != nil {
			t.Fatal(err)
		}
		ids, _ := m.Tokenizer.Encode(text, false)
		res, _, err := m.Generate(context.Background(), engine.Request{Prompt: ids, Lanes: 2, MaxNewTokens: 12, Hook: inj, EOS: m.Tokenizer.EOS})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(res[0].Tokens) != fmt.Sprint(res[1].Tokens) {
			differ++
		}
		if i < 3 {
			t.Logf("%q\n  base:    %q\n  steered: %q", q, m.Tokenizer.Decode(res[0].Tokens, true), m.Tokenizer.Decode(res[1].Tokens, true))
		}
	}
	t.Logf("steered differs from base on %d/%d prompts", differ, len(questions))
	if float64(differ) <= 0.95*float64(len(questions)) {
		t.Fatalf("steered lane differs on only %d of %d prompts", differ, len(questions))
	}
	// alpha 1e6: a clear error, no crash, no NaN text.
	inj.SetAlpha(1e6)
	ids, _ := m.Tokenizer.Encode("Hello", false)
	res, _, err := m.Generate(context.Background(), engine.Request{Prompt: ids, Lanes: 2, MaxNewTokens: 4, Hook: inj})
	if !errors.Is(err, steering.ErrTooStrong) || !strings.Contains(err.Error(), "alpha 1e+06") {
		t.Fatalf("alpha 1e6: results %v, err %v", res, err)
	}
	t.Logf("alpha 1e6: %v", err)
}
