"""What the reference scripts share to run llama.cpp's own converter on the
tiny seeded models, which have no tokenizer: GPT-2's byte alphabet and a
minimal vocabulary step put in place of the converter's. Everything else a
converted file holds (tensor names, permutations, metadata, the weights) is
the converter's own.
"""
import os
import sys


def byte_chars():
    """GPT-2's printable stand-ins for the 256 byte values, in byte order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, (chr(c) for c in cs)))
    return [table[b] for b in range(256)]


def minimal_vocab(self):
    """A converter's set_vocab: byte-level BPE ("gpt2") of the first
    vocab_size - 1 byte characters and one merged token, with the model's
    BOS and EOS ids when its config names them."""
    n = self.hparams["vocab_size"]
    tokens = byte_chars()[:n - 1] + ["\u0120\u0120"]
    w = self.gguf_writer
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([1] * len(tokens))  # NORMAL
    w.add_token_merges(["\u0120 \u0120"])
    for key, add in (("bos_token_id", w.add_bos_token_id), ("eos_token_id", w.add_eos_token_id)):
        if isinstance(self.hparams.get(key), int):
            add(self.hparams[key])


def converter(llama_src):
    """Imports llama.cpp's convert_hf_to_gguf from the vendored source with
    every model class's vocabulary step replaced by minimal_vocab; returns
    the module (call convert(module, ...) to run it)."""
    src = os.path.abspath(llama_src)
    sys.path[:0] = [src, os.path.join(src, "gguf-py")]
    import convert_hf_to_gguf as conv
    real = conv.get_model_class

    def with_minimal_vocab(*a, **kw):
        cls = real(*a, **kw)
        return type(cls.__name__, (cls,), {"set_vocab": minimal_vocab, "model_arch": cls.model_arch})
    conv.get_model_class = with_minimal_vocab
    return conv


def convert(conv, model_dir, out, outtype="f32"):
    """Runs the converter's main on model_dir, writing out."""
    sys.argv = ["convert_hf_to_gguf.py", str(model_dir), "--outtype", outtype, "--outfile", str(out)]
    conv.main()
