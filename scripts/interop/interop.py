"""make interop's driver: export genkit sessions on the default model and run
what the export says, with the real tools.

    python scripts/interop/interop.py --genkit bin/genkit --llama-bin build/peers/b/bin --out build/interop

Run by `make interop` in its throwaway venv (torch, transformers, gguf,
accelerate), with GENKIT_DEFAULT_MODEL set. For each session it
  1. decodes it with `genkit generate --session NAME --json` (greedy);
  2. exports it with `genkit export`, checks steering.gguf with gguf's
     GGUFReader and generation_config.json with transformers'
     GenerationConfig.validate(strict=True);
  3. runs the README's Python block as written, in the export folder: its
     text must equal genkit's steered text;
and for the residual session it also
  4. runs the README's llama.cpp command as written (the Q4_1 model): it must
     load the vector and steer (its text differs from the same command
     without the vector flags), and its text is compared with genkit's;
  5. runs the same command on an F32 copy of the model (llama-quantize
     --allow-requantize ... F32): the weights genkit computes with, without
     llama.cpp's 8-bit activation quantization; its text must equal genkit's
     steered text, and differ from genkit's text steered one block earlier
     or later (so a shifted layer mapping would fail).
Results go to OUT/results.json; the exit status is 0 only if every check
passes.
"""
import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time

SESSIONS = {
    # residual, constant, scope all: what llama.cpp can reproduce.
    "interop-residual": {
        "prompt": "Tell me about the ocean.", "chat": True,
        "steering": {"preset": "pirate", "method": "mean", "schedule": "constant", "scope": "all", "mode": "residual"},
        "generation": {"do_sample": False, "temperature": 0.7, "max_new_tokens": 32, "seed": 42},
    },
    # logit bias with a warmup schedule.
    "interop-logitbias": {
        "prompt": "Describe your morning.", "system": "You are a helpful assistant.", "chat": True,
        "steering": {"preset": "pirate", "method": "mean", "alpha": 1, "schedule": "warmup:4", "scope": "all", "mode": "logit-bias"},
        "generation": {"do_sample": False, "max_new_tokens": 24, "repetition_penalty": 1.1},
    },
    # a conversation, scope generated, a window schedule, an explicit layer.
    "interop-conversation": {
        "prompt": "And what about rivers?", "chat": True,
        "messages": [{"role": "system", "content": "Answer briefly."},
                     {"role": "user", "content": "What is a lake?"},
                     {"role": "assistant", "content": "A body of water surrounded by land."}],
        "steering": {"preset": "shakespearean", "method": "mean", "layer": 12, "alpha": 5, "schedule": "window:1:0",
                     "scope": "generated", "mode": "residual"},
        "generation": {"do_sample": False, "max_new_tokens": 24},
    },
}


def sh(cmd, cwd=None, env=None, check=True):
    t0 = time.time()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, shell=isinstance(cmd, str))
    if check and res.returncode != 0:
        sys.exit(f"command failed ({res.returncode}): {cmd}\n{res.stderr[-3000:]}")
    return res, time.time() - t0


def block(readme, lang):
    m = re.search(r"```" + lang + r"\n(.*?)```", readme, re.S)
    if not m:
        sys.exit(f"README has no ```{lang} block")
    return m.group(1)


def llama_text(stdout):
    return stdout.replace(" [end of text]", "").strip("\n")


def common_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def words_prefix(a, b):
    wa, wb = a.split(), b.split()
    return common_prefix(wa, wb), len(wb)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--genkit", required=True)
    ap.add_argument("--llama-bin", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    genkit = os.path.abspath(args.genkit)
    llama_bin = os.path.abspath(args.llama_bin)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    data = os.path.join(out, "data")
    subprocess.run(["rm", "-rf", data], check=True)
    os.makedirs(os.path.join(data, "sessions"))
    env = dict(os.environ, GENKIT_DATA_DIR=data, PATH=llama_bin + os.pathsep + os.environ["PATH"])
    model = os.environ["GENKIT_DEFAULT_MODEL"]

    import transformers
    from gguf import GGUFReader
    from transformers import GenerationConfig

    results = {"transformers": transformers.__version__, "model": os.path.basename(model), "sessions": {}, "checks": []}
    failed = []

    def check(name, ok, detail):
        results["checks"].append({"check": name, "ok": bool(ok), "detail": detail})
        print(("PASS " if ok else "FAIL ") + name + ": " + detail, flush=True)
        if not ok:
            failed.append(name)

    for name, body in SESSIONS.items():
        doc = dict(version=2, name=name, model="", saved="2026-11-27T00:00:00Z", **body)
        with open(os.path.join(data, "sessions", name + ".json"), "w") as f:
            json.dump(doc, f)
        res, _ = sh([genkit, "generate", "--session", name, "--json"], env=env)
        gk = json.loads(res.stdout)
        steered, base, layer = gk["steered"]["text"], gk["base"]["text"], gk["steering"]["layer"]
        r = {"genkit_steered": steered, "genkit_base": base, "layer": layer, "alpha": gk["steering"]["alpha"]}
        results["sessions"][name] = r
        check(f"{name}: genkit's steered text differs from its base text", steered != base,
              "so matching the steered text tests the steering")
        exp = os.path.join(out, "exports", name)
        sh([genkit, "export", "--session", name, "--out", exp, "--force"], env=env)
        readme = open(os.path.join(exp, "README.md")).read()

        # The files, read by the tools' own readers.
        st = json.load(open(os.path.join(exp, "steering.json")))
        vec = os.path.join(exp, st["steering"]["vector_file"])
        rd = GGUFReader(vec)
        names = sorted(t.name for t in rd.tensors)
        arch = rd.fields["general.architecture"].contents()
        want = [f"direction.{l}" for l in st["steering"]["layers"]]
        check(f"{name}: steering.gguf (gguf GGUFReader)", arch == "controlvector" and names == sorted(want)
              and all(t.tensor_type == 0 and len(t.shape) == 1 for t in rd.tensors),
              f"architecture {arch}, tensors {names}, model_hint {rd.fields['controlvector.model_hint'].contents()}, "
              f"layer_count {rd.fields['controlvector.layer_count'].contents()}")
        try:
            GenerationConfig.from_pretrained(exp).validate(strict=True)
            check(f"{name}: generation_config.json validate(strict=True)", True, "accepted")
        except ValueError as e:
            check(f"{name}: generation_config.json validate(strict=True)", False, str(e).splitlines()[0])
        modes = {p: os.stat(os.path.join(exp, p)).st_mode & 0o777 for p in os.listdir(exp)}
        check(f"{name}: file modes", all(m == 0o644 for m in modes.values()), str({k: oct(v) for k, v in modes.items()}))

        # The Python block, as written, in the export folder.
        with open(os.path.join(out, name + ".py"), "w") as f:
            f.write(block(readme, "python"))
        res, secs = sh([sys.executable, os.path.join(out, name + ".py")], cwd=exp, env=env, check=False)
        lines = [l for l in res.stdout.splitlines() if l.strip()]
        py_text = "\n".join(l for l in res.stdout.strip("\n").splitlines() if not l.startswith("note:"))
        r["python"] = py_text
        r["python_seconds"] = round(secs, 1)
        r["python_ids_note"] = any(l.startswith("note:") for l in lines)
        check(f"{name}: Python snippet runs", res.returncode == 0, f"exit {res.returncode}" + (f": {res.stderr[-500:]}" if res.returncode else ""))
        check(f"{name}: Python text == genkit steered text", py_text == steered,
              f"{common_prefix(py_text, steered)}/{len(steered)} chars shared; prompt ids {'differ' if r['python_ids_note'] else 'equal'}")

        if name != "interop-residual":
            continue
        # llama.cpp: the command as written.
        cmd = block(readme, "sh").replace("\\\n", " ")
        res, secs = sh(cmd, cwd=exp, env=env, check=False)
        lc = llama_text(res.stdout)
        refusals = ["failed to load control vector", "no valid control vector", "invalid/unparsable direction",
                    "invalid (zero) direction", "does not match"]
        loaded = not any(x in res.stderr for x in refusals)
        argv = shlex.split(cmd)
        i = argv.index("--control-vector-scaled")
        plain = argv[:i] + argv[i + 5:]  # without --control-vector-scaled F:S --control-vector-layer-range A B
        res0, _ = sh(shlex.join(plain + ["--verbose-prompt"]), cwd=exp, env=env, check=False)
        lc0 = llama_text(res0.stdout)
        llama_ids = [int(m) for m in re.findall(r"^.*?\s(\d+) -> '", res0.stderr, re.M)]
        check("llama.cpp's prompt ids == genkit's", llama_ids == st["prompt"]["token_ids"],
              f"{len(llama_ids)} ids from prompt.txt, genkit {len(st['prompt']['token_ids'])}")
        r.update({"llama_q4_1": lc, "llama_q4_1_unsteered": lc0, "llama_seconds": round(secs, 1)})
        check("llama.cpp (as exported, Q4_1) loads the vector", res.returncode == 0 and loaded,
              f"exit {res.returncode}" + (f": {res.stderr[-800:]}" if res.returncode else ""))
        check("llama.cpp (as exported, Q4_1) steers", lc != lc0, f"steered {lc[:60]!r}... vs unsteered {lc0[:60]!r}...")
        ws, wn = words_prefix(lc, steered)
        wb, _ = words_prefix(lc0, base)
        r["q4_1_shared_words_steered"] = [ws, wn]
        r["q4_1_shared_words_unsteered"] = wb
        check("llama.cpp (Q4_1) steered text vs genkit's", ws >= 2 and ws > words_prefix(lc, base)[0],
              f"first {ws} of {wn} words shared with genkit's steered text, {words_prefix(lc, base)[0]} with genkit's base text "
              f"(unsteered, llama.cpp and genkit share {wb} words): llama.cpp's Q4_1 kernels round activations to 8 bits, "
              f"so greedy paths part after a few tokens")

        # llama.cpp on the F32 weights genkit computes with.
        f32 = os.path.join(out, "model-f32.gguf")
        if not os.path.exists(f32):
            sh([os.path.join(llama_bin, "llama-quantize"), "--allow-requantize", model, f32, "F32"])
        argv_f32 = list(argv)
        argv_f32[argv_f32.index("-m") + 1] = f32
        res, _ = sh(shlex.join(argv_f32), cwd=exp, env=env, check=False)
        lf = llama_text(res.stdout)
        r["llama_f32"] = lf
        check("llama.cpp (F32 weights) == genkit steered text", res.returncode == 0 and lf == steered,
              f"{common_prefix(lf, steered)}/{len(steered)} chars shared")
        for shift in (-1, 1):
            res, _ = sh([genkit, "generate", "--session", name, "--steer-layer", str(layer + shift), "--json"], env=env)
            other = json.loads(res.stdout)["steered"]["text"]
            r[f"genkit_layer_{layer + shift}"] = other
            check(f"layer mapping: genkit at block {layer + shift} differs from llama.cpp's direction.{layer}", other != lf,
                  f"{common_prefix(other, lf)} chars shared")

    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, ensure_ascii=False)
    print(f"\n{len(results['checks']) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
