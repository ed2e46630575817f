"""Shows each family's feature failing parity when switched off.

Applies one source change at a time (a feature turned off), runs the
parity tests against transformers (and llama.cpp's GGUFs) and prints which
models fail; every change must make at least one fail. Run from the
repository root with the CGO environment set (see the Makefile).
"""
import subprocess, sys, os
M = [
 ("no sliding window", "engine/config.go", "	if c.SlidingWindow <= 0 {\n		return false\n	}\n	if len(c.LayerTypes) == 0 {", "	if true {\n		return false\n	}\n	if len(c.LayerTypes) == 0 {"),
 ("no (1+w) norms", "engine/model.go", "	plusOne := arch.NormPlusOne && !gguf", "	plusOne := false && arch.NormPlusOne && !gguf"),
 ("no soft-capping", "engine/blocks.go", "	if cap == 0 || x == nil {\n		return x\n	}\n	x = scaled", "	if true {\n		return x\n	}\n	x = scaled"),
 ("no residual multiplier", "engine/blocks.go", "	return s.Track(mlx.Add(h, scaled(s, y, k)))", "	return s.Track(mlx.Add(h, y))"),
 ("one RoPE base for all layers", "engine/model.go", "		if cfg.Sliding(i) {\n			m.attn[i] = local", "		if cfg.Sliding(i) {\n			m.attn[i] = global"),
 ("q/k norms per head only", "engine/arch_olmo2.go", "QKNormFull: true,", "QKNormFull: false,"),
 ("no top-k renormalisation", "engine/arch_qwen3moe.go", "	if e.normTopK {", "	if false {"),
 ("full RoPE", "engine/config.go", "	if c.PartialRotaryFactor == 0 || c.PartialRotaryFactor == 1 {", "	if true {"),
 ("no embedding scale", "engine/forward.go", "	if m.arch.EmbedScale {", "	if false {"),
 ("GGUF norms get the one again", "engine/model.go", "	plusOne := arch.NormPlusOne && !gguf", "	plusOne := arch.NormPlusOne"),
 ("GGUF granite scales ignored", "engine/load.go", '	c.EmbeddingMultiplier = num("embedding_scale", 0)', '	c.EmbeddingMultiplier = 0'),
 ("GGUF partial RoPE ignored", "engine/load.go", "		c.PartialRotaryFactor = float64(n) / float64(c.HeadDim)", "		_ = n"),
 ("silu everywhere", "engine/blocks.go", '	case "gelu_pytorch_tanh", "gelu_new", "gelu_fast":\n		return geluTanh(s, x)', '	case "none":\n		return geluTanh(s, x)'),
]
env = dict(os.environ)
bad = False
for name, path, a, b in M:
    src = open(path).read()
    assert a in src, (name, a)
    open(path, "w").write(src.replace(a, b, 1))
    try:
        r = subprocess.run(["go", "test", "-count=1", "-p", "1", "./engine/", "-run", "TestTinyModelsMatchHF|TestFamilyGGUFsMatchHF", "-v"], capture_output=True, text=True, env=env)
        fails = [l.strip().split(" ")[2] for l in r.stdout.splitlines() if l.strip().startswith("--- FAIL: Test") and "/" in l]
        print(f"{name}: failing {fails}" if fails else f"{name}: NOTHING FAILED {r.stdout[-300:]}", flush=True)
        if not fails:
            bad = True
    finally:
        open(path, "w").write(src)
sys.exit(1 if bad else 0)
