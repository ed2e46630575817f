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
	"testing"
	"time"

	"github.com/mlx-genkit/genkit/engine"
	"github.com/mlx-genkit/genkit/internal/disttest"
	"github.com/mlx-genkit/genkit/mlx"
)

// tpWorkerEnv makes TestTensorParallelWorker play one rank; it holds the
// file rank 0 writes its results to.
const tpWorkerEnv = "GENKIT_TEST_TP_WORKER"

// tpFamilies are the tiny families the two-process test shards: biases
// (qwen2), q/k norms per head (qwen3, gemma3), a window (mistral), soft-caps
// and sandwich norms (gemma2), multipliers (granite), fused checkpoints
// (phi3).
var tpFamilies = []string{"llama_tied", "qwen2_bias", "qwen3_headdim", "mistral_window", "granite_mult", "phi3_fused", "gemma2_caps", "gemma3_local"}

// tpResult is what one model gives, on one process or sharded.
type tpResult struct {
	Logits  [][]float32 `json:"logits"`  // every position of the prompt
	Steered [][]float32 `json:"steered"` // the same with alpha·v added after a middle block
	Greedy  [][]int     `json:"greedy"`  // two lanes, the second steered
	Refused string      `json:"refused"` // olmo2's error (q/k norms across heads)
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
// of a base and a steered lane identical. A family the split cannot shard
// (olmo2's q/k norms span every head) is refused by name.
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
			want := tpRun(t, hfDir(name), engine.LoadOptions{})
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
	if r := sharded["olmo2_post"].Refused; !strings.Contains(r, "olmo2") || !strings.Contains(r, "across all heads") {
		t.Errorf("olmo2 over two ranks: got %q, want a refusal naming olmo2 and its q/k norms", r)
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
		results[name] = tpRun(t, hfDir(name), engine.LoadOptions{Group: g})
	}
	var refused error
	if err := mlx.Do(context.Background(), func() error {
		m, err := engine.LoadModel(hfDir("olmo2_post"), engine.LoadOptions{Group: g})
		if err == nil {
			m.Free()
		}
		refused = err
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if refused == nil {
		t.Fatal("olmo2 loaded sharded")
	}
	results["olmo2_post"] = tpResult{Refused: refused.Error()}
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
// and a steered lane, 32 tokens each, reported as steps/s by rank 0.
//
// Two ranks, one GPU each (scripts/gpu/tp.sh):
//
//	MLX_RANK=r MLX_WORLD_SIZE=2 NCCL_HOST_IP=127.0.0.1 NCCL_PORT=P CUDA_VISIBLE_DEVICES=r \
//	  GENKIT_DIST_BACKEND=nccl engine.test -test.run '^$' -test.bench TensorParallelDecode
func BenchmarkTensorParallelDecode(b *testing.B) {
	g, err := engine.InitDistributed(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if g == nil || g.Size() < 2 {
		b.Skip("needs a group of two or more ranks (genkit launch)")
	}
	name := os.Getenv("GENKIT_BENCH_SYNTHETIC")
	if name == "" {
		name = "llama3-70b-56l"
	}
	spec, err := engine.LookupSynthetic(name)
	if err != nil {
		b.Fatal(err)
	}
	// GENKIT_BENCH_LAYERS deepens (or thins) the shape, e.g. past what one
	// 141 GB H200 holds.
	if s := os.Getenv("GENKIT_BENCH_LAYERS"); s != "" && s != "0" {
		if spec.Layers, err = strconv.Atoi(s); err != nil || spec.Layers <= 0 {
			b.Fatalf("GENKIT_BENCH_LAYERS=%q: want a positive layer count", s)
		}
		spec.Name += fmt.Sprintf("-%dl", spec.Layers)
	}
	var m *engine.Model
	start := time.Now()
	if err := mlx.Do(context.Background(), func() error {
		var err error
		m, err = engine.LoadRandom(spec, 1, engine.LoadOptions{Group: g})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = mlx.Do(context.Background(), func() error { m.Free(); return nil }) }()
	b.ReportMetric(time.Since(start).Seconds(), "load-s")
	b.ReportMetric(float64(spec.Params())*2/1e9, "model-GB")
	v := make([]float32, m.HiddenSize())
	for i := range v {
		v[i] = 0.05 * float32(math.Cos(float64(i)))
	}
	hook := steerHook{layer: m.NumLayers() / 2}
	if err := mlx.Do(context.Background(), func() error {
		hook.v, err = mlx.FromFloat32s(v, len(v))
		if err == nil {
			hook.v, err = mlx.AsType(hook.v, mlx.Bfloat16)
		}
		return err
	}); err != nil {
		b.Fatal(err)
	}
	prompt := make([]int, 10)
	for i := range prompt {
		prompt[i] = (i*7919 + 13) % spec.RegularTokens
	}
	const steps = 32
	for _, lanes := range []int{1, 2} {
		var decode time.Duration
		for i := 0; i < b.N; i++ {
			req := engine.Request{Prompt: prompt, Lanes: lanes, MaxNewTokens: steps, IgnoreEOS: true}
			if lanes == 2 {
				req.Hook = hook
			}
			_, st, err := m.Generate(context.Background(), req)
			if err != nil {
				b.Fatal(err)
			}
			decode += st.Decode
		}
		b.ReportMetric(float64(b.N*(steps-1))/decode.Seconds(), fmt.Sprintf("steps/s-%dlane", lanes))
	}
}
