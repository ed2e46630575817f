package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/internal/disttest"
	"github.com/mlx-genkit/genkit/mlx"
	"github.com/mlx-genkit/genkit/sampling"
	"github.com/mlx-genkit/genkit/steering"
)

// tpWorkerEnv makes TestTensorParallelWorker play one rank; it holds the
// file rank 0 writes its results to.
const tpWorkerEnv = "GENKIT_TEST_TP_WORKER"

// tpFamilies are the tiny families the two-process test shards: biases
// (qwen2), q/k norms per head (qwen3, gemma3) and across all heads (olmo2,
// with post-norms), a window (mistral), soft-caps and sandwich norms
// (gemma2), multipliers (granite), fused checkpoints (phi3), mixtures of
// experts (qwen3_moe; _mlx4 with MLX 4-bit experts and an 8-bit router).
var tpFamilies = []string{"llama_tied", "qwen2_bias", "qwen3_headdim", "mistral_window", "granite_mult", "phi3_fused", "gemma2_caps", "gemma3_local", "olmo2_post", "qwen3_moe", "qwen3_moe_mlx4"}

// tpResult is what one model gives, on one process or sharded.
type tpResult struct {
	Logits  [][]float32 `json:"logits"`  // every position of the prompt
	Steered [][]float32 `json:"steered"` // the same with alpha·v added after a middle block
	Greedy  [][]int     `json:"greedy"`  // two lanes, the second steered
	Refused string      `json:"refused"` // the error of a model whose heads do not split
}

var tpPrompt = []int{17, 3, 99, 42, 7, 250, 1, 64, 128, 5, 9, 33}

// steerHook adds alpha·v after one block, in lane 1 only when lanes > 1.
type steerHook struct {
	layer int
	v     *mlx.Array
}

func (h steerHook) AfterBlock(s *mlx.Scope, layer int, x *mlx.Array, _ engine.Step) (*mlx.Array, error) {
	if layer != h.layer {
		return x, nil
	}
	add := h.v
	if b := x.Dim(0); b > 1 {
		zero := s.Track(mlx.Zeros(x.Dtype(), 1, 1, x.Dim(2)))
		vv := s.Track(mlx.Reshape(h.v, 1, 1, x.Dim(2)))
		add = s.Track(mlx.Concatenate(0, zero, vv))
	}
	return s.Track(mlx.Add(x, add)), s.Err()
}

// tpOptions are the load options of family name, sharded over g (nil: one
// process). The MLX 4-bit MoE model loads dense: its experts' down rows are
// one quantization group of 32, which two ranks cannot split (kept
// quantized, as on a GPU by default, it is refused: checked below).
func tpOptions(name string, g *engine.DistGroup) engine.LoadOptions {
	opts := engine.LoadOptions{Group: g}
	if name == "qwen3_moe_mlx4" {
		opts.Weights = engine.WeightsDense
	}
	return opts
}

// tpRefusal is the error of loading the model at path with opts, which
// must fail (what names the model in the test's failure).
func tpRefusal(t *testing.T, path string, opts engine.LoadOptions, what string) string {
	t.Helper()
	var refused error
	if err := mlx.Do(context.Background(), func() error {
		m, err := engine.LoadModel(path, opts)
		if err == nil {
			m.Free()
		}
		refused = err
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if refused == nil {
		t.Fatalf("%s loaded sharded over %d ranks", what, opts.Group.Size())
	}
	return refused.Error()
}

// tpRun computes a tpResult for the model at path with opts.
func tpRun(t *testing.T, path string, opts engine.LoadOptions) tpResult {
	t.Helper()
	m := load(t, path, opts)
	var r tpResult
	var err error
	lanes, err := m.Logits(tpPrompt, 1, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Logits = lanes[0]
	D := m.HiddenSize()
	v := make([]float32, D)
	for i := range v {
		v[i] = float32(math.Sin(float64(i)*0.7)) * 3 / float32(math.Sqrt(float64(D)))
	}
	var hook steerHook
	hook.layer = m.NumLayers() / 2
	if err := mlx.Do(context.Background(), func() error {
		hook.v, err = mlx.FromFloat32s(v, D)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = mlx.Do(context.Background(), func() error { hook.v.Free(); return nil }) }()
	steered, err := m.Logits(tpPrompt, 1, true, hook)
	if err != nil {
		t.Fatal(err)
	}
	r.Steered = steered[0]
	res, _, err := m.Generate(context.Background(), engine.Request{Prompt: tpPrompt, Lanes: 2, MaxNewTokens: 10, IgnoreEOS: true, Hook: hook})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range res {
		r.Greedy = append(r.Greedy, l.Tokens)
	}
	return r
}

// TestTensorParallelMatchesOneProcess shards each tiny family over two
// processes (MLX's ring backend on loopback, as `genkit launch -n 2` runs
// them) and compares with one process: logits at every position within
// 1e-4, a residual steering hook's logits within 1e-4, and greedy tokens
// of a base and a steered lane identical. A model whose key/value heads do
// not split over the ranks is refused, naming them.
func TestTensorParallelMatchesOneProcess(t *testing.T) {
	if os.Getenv(tpWorkerEnv) != "" {
		t.Skip("inside a worker")
	}
	// GENKIT_TEST_TP_BACKEND=nccl runs the ranks over NCCL, one GPU each
	// (the GPU suite on a two-GPU machine); the default is the ring backend
	// on loopback, which CI runs.
	results := filepath.Join(t.TempDir(), "rank0.json")
	disttest.Run(t, 2, "TestTensorParallelWorker", []string{tpWorkerEnv + "=" + results}, 3*time.Minute)
	var sharded map[string]tpResult
	data, err := os.ReadFile(results)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &sharded); err != nil {
		t.Fatal(err)
	}
	for _, name := range tpFamilies {
		t.Run(name, func(t *testing.T) {
			got, ok := sharded[name]
			if !ok {
				t.Fatal("no sharded result")
			}
			want := tpRun(t, hfDir(name), tpOptions(name, nil))
			if d := maxDiff32(got.Logits, want.Logits); d > 1e-4 {
				t.Errorf("sharded logits differ from one process by %g", d)
			}
			if d := maxDiff32(got.Steered, want.Steered); d > 1e-4 {
				t.Errorf("sharded steered logits differ from one process by %g", d)
			}
			if d := maxDiff32(want.Steered, want.Logits); d < 1e-3 {
				t.Errorf("the hook changed the logits by %g only: the steering comparison shows nothing", d)
			}
			if fmt.Sprint(got.Greedy) != fmt.Sprint(want.Greedy) {
				t.Errorf("sharded greedy %v, one process %v", got.Greedy, want.Greedy)
			}
		})
	}
	if r := sharded["mlx4_quantized"].Refused; !strings.Contains(r, "experts' down") || !strings.Contains(r, "1 units of 32") {
		t.Errorf("quantized experts over two ranks: got %q, want a refusal naming the experts' groups", r)
	}
	if r := sharded["one_kv_head"].Refused; !strings.Contains(r, "1 key/value heads do not both divide over 2 ranks") {
		t.Errorf("one key/value head over two ranks: got %q, want a refusal naming the heads", r)
	}
}

// TestTensorParallelWorker is one rank of TestTensorParallelMatchesOneProcess.
func TestTensorParallelWorker(t *testing.T) {
	out := os.Getenv(tpWorkerEnv)
	if out == "" {
		t.Skip("run by TestTensorParallelMatchesOneProcess only")
	}
	g, err := engine.InitDistributed(context.Background())
	if err != nil || g == nil {
		t.Fatalf("joining the group: %v", err)
	}
	results := map[string]tpResult{}
	for _, name := range tpFamilies {
		results[name] = tpRun(t, hfDir(name), tpOptions(name, g))
	}
	// One key/value head cannot split over two ranks.
	odd := filepath.Join(t.TempDir(), "one_kv_head")
	if err := os.MkdirAll(odd, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := filepath.Abs(hfDir("llama_tied"))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		from, to := filepath.Join(src, e.Name()), filepath.Join(odd, e.Name())
		if e.Name() != "config.json" {
			if err := os.Symlink(from, to); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var cfg map[string]any
		data, err := os.ReadFile(from)
		if err == nil {
			err = json.Unmarshal(data, &cfg)
		}
		if err != nil {
			t.Fatal(err)
		}
		cfg["num_key_value_heads"] = 1
		if data, err = json.Marshal(cfg); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	results["one_kv_head"] = tpResult{Refused: tpRefusal(t, odd, engine.LoadOptions{Group: g}, "a model with one key/value head")}
	// The 4-bit experts kept quantized: their down rows are one group of
	// 32, which two ranks cannot split.
	results["mlx4_quantized"] = tpResult{Refused: tpRefusal(t, hfDir("qwen3_moe_mlx4"),
		engine.LoadOptions{Group: g, Weights: engine.WeightsQuantized}, "quantized experts of one group a row")}
	if g.Rank() == 0 {
		data, err := json.Marshal(results)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func maxDiff32(a, b [][]float32) float64 {
	if len(a) != len(b) || len(a) == 0 {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return math.Inf(1)
		}
		for j := range a[i] {
			d = math.Max(d, math.Abs(float64(a[i][j]-b[i][j])))
		}
	}
	return d
}

// BenchmarkTensorParallelDecode decodes a model made of random weights in
// the shape GENKIT_BENCH_SYNTHETIC names (default llama3-70b-56l: 100 GB in
// bfloat16, more than one 80 GB GPU) sharded over the ranks of the group
// genkit launch started (it is skipped outside one): one lane, then a base
// and a steered lane through steering.Decode (the run every front end
// makes: residual steering after the middle block), 32 greedy tokens each,
// reported as steps/s by rank 0. GENKIT_BENCH_LAYERS=N sets the depth;
// =auto picks the fewest layers whose weights exceed one GPU's memory, so
// the model provably fits no single GPU of the machine. The model is made
// once per process (Go calls a benchmark more than once), and each rank
// says on stderr what it has done, so a stall shows where it is.
//
// Two ranks, one GPU each (scripts/gpu/tp.sh):
//
//	MLX_RANK=r MLX_WORLD_SIZE=2 NCCL_HOST_IP=127.0.0.1 NCCL_PORT=P CUDA_VISIBLE_DEVICES=r \
//	  GENKIT_DIST_BACKEND=nccl GENKIT_BENCH_LAYERS=auto engine.test -test.run '^$' -test.bench TensorParallelDecode
func BenchmarkTensorParallelDecode(b *testing.B) {
	tb, err := tpBenchModel()
	if err != nil {
		b.Fatal(err)
	}
	if tb == nil {
		b.Skip("needs a group of two or more ranks (genkit launch)")
	}
	m := tb.m
	b.ReportMetric(tb.load.Seconds(), "load-s")
	b.ReportMetric(float64(tb.spec.Params())*2/1e9, "model-GB")
	if tb.device > 0 {
		b.ReportMetric(float64(tb.device)/1e9, "one-GPU-GB")
	}
	v := make([]float32, m.HiddenSize())
	for i := range v {
		v[i] = float32(math.Cos(float64(i)))
	}
	steer, err := steering.Fixed(m, "residual", m.NumLayers()/2, v, 8)
	if err != nil {
		b.Fatal(err)
	}
	prompt := make([]int, 10)
	for i := range prompt {
		prompt[i] = (i*7919 + 13) % tb.spec.RegularTokens
	}
	const steps = 32
	n := steps
	cfg := &sampling.GenerationConfig{MaxNewTokens: &n}
	changed := 0
	for _, lanes := range []int{1, 2} {
		var decode time.Duration
		made := 0
		for i := 0; i < b.N; i++ {
			run := steering.Run{Prompt: engine.Prompt{IDs: prompt}, Gen: cfg, IgnoreEOS: true}
			if lanes == 2 {
				run.Steering, run.LaneScales = steer, steering.PairLanes
			}
			out, err := steering.Decode(context.Background(), m, run, steering.Observers{})
			if err != nil {
				b.Fatal(err)
			}
			decode += out.Stats.Decode
			made += out.Stats.Steps - 1
			if lanes == 2 {
				changed = 0
				for j, t := range out.Lanes[1].Tokens {
					if j >= len(out.Lanes[0].Tokens) || t != out.Lanes[0].Tokens[j] {
						changed++
					}
				}
			}
			tb.say("%d lane(s), run %d of %d: %d steps in %v", lanes, i+1, b.N, out.Stats.Steps, out.Stats.Decode.Round(time.Millisecond))
		}
		b.ReportMetric(float64(made)/decode.Seconds(), fmt.Sprintf("steps/s-%dlane", lanes))
	}
	// Residual steering must move the steered lane off the base lane's
	// tokens, or the pair measured nothing steered.
	b.ReportMetric(float64(changed), "steered-tokens-changed")
	if changed == 0 {
		b.Fatalf("the steered lane gave the base lane's %d tokens: steering had no effect", steps)
	}
}

// tpBench is the benchmark's model, made once per process.
type tpBench struct {
	m      *engine.Model
	spec   engine.SyntheticSpec
	load   time.Duration
	device uint64 // one GPU's memory in bytes (0 on the CPU)
	rank   int
	start  time.Time
}

var (
	tpBenchOnce   sync.Once
	tpBenchShared *tpBench
	tpBenchErr    error
)

// say prints a progress line on stderr, with the rank and the time since
// the process began making the model.
func (tb *tpBench) say(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "[rank %d, %6.1fs] %s\n", tb.rank, time.Since(tb.start).Seconds(), fmt.Sprintf(format, a...))
}

// tpBenchModel joins the group and makes the benchmark's model once; nil
// without a group of two or more ranks.
func tpBenchModel() (*tpBench, error) {
	tpBenchOnce.Do(func() { tpBenchShared, tpBenchErr = makeTPBench() })
	return tpBenchShared, tpBenchErr
}

func makeTPBench() (*tpBench, error) {
	g, err := engine.InitDistributed(context.Background())
	if err != nil {
		return nil, err
	}
	if g == nil || g.Size() < 2 {
		return nil, nil
	}
	tb := &tpBench{rank: g.Rank(), start: time.Now()}
	name := os.Getenv("GENKIT_BENCH_SYNTHETIC")
	if name == "" {
		name = "llama3-70b-56l"
	}
	if tb.spec, err = engine.LookupSynthetic(name); err != nil {
		return nil, err
	}
	if err := mlx.Do(context.Background(), func() error {
		info, err := mlx.Info(mlx.GPU)
		if err == nil {
			tb.device = info.Memory
		}
		return nil
	}); err != nil {
		return nil, err
	}
	switch s := os.Getenv("GENKIT_BENCH_LAYERS"); s {
	case "", "0":
	case "auto":
		if tb.device == 0 {
			return nil, fmt.Errorf("GENKIT_BENCH_LAYERS=auto needs a GPU whose memory size MLX reports")
		}
		tb.spec = tb.spec.DeepenPast(int64(tb.device), 2)
	default:
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("GENKIT_BENCH_LAYERS=%q: want a positive layer count or auto", s)
		}
		tb.spec.Layers = n
		tb.spec.Name += fmt.Sprintf("-%dl", n)
	}
	tb.say("making %s: %d layers, %.1f GB of bfloat16 weights over %d ranks (one GPU: %.1f GB)",
		tb.spec.Name, tb.spec.Layers, float64(tb.spec.Params())*2/1e9, g.Size(), float64(tb.device)/1e9)
	t0 := time.Now()
	if err := mlx.Do(context.Background(), func() error {
		var err error
		tb.m, err = engine.LoadRandom(tb.spec, 1, engine.LoadOptions{Group: g})
		return err
	}); err != nil {
		return nil, err
	}
	tb.load = time.Since(t0)
	var mem mlx.MemoryStats
	_ = mlx.Do(context.Background(), func() error { mem, _ = mlx.Memory(); return nil })
	tb.say("made in %v: MLX holds %.1f GB on this rank (peak %.1f GB, limit %.1f GB)", tb.load.Round(time.Millisecond),
		float64(mem.Active)/1e9, float64(mem.Peak)/1e9, float64(mem.Limit)/1e9)
	return tb, nil
}
