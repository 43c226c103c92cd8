"""A Hugging Face tokenizer folder (tokenizer.json + tokenizer_config.json) for the real Gemma-4 vocabulary.

No Gemma-4 tokenizer files can be downloaded here, so this builds one with the `tokenizers` library from
llama.cpp's vocab-only GGUF (models/ggml-vocab-gemma-4.gguf): the 262,144 tokens and 514,906 merges of the
released tokenizer, as a byte-fallback BPE with the Gemma normalizer (space -> U+2581, no prefix space, no
pre-tokenizer) and the SentencePiece-style decoder. The CONTROL tokens of the GGUF become special added tokens,
the USER_DEFINED ones (the chat markers llama.cpp's converter forces visible) plain added tokens.

What makes it trustworthy: `check_hf_cases` reproduces Hugging Face's own tokenizations of 46 hard strings
that ship beside the vocab (models/ggml-vocab-gemma-4.gguf.inp/.out), and build.py checks that
convert_hf_to_gguf.py turns this folder back into exactly the vocab GGUF's tokens, types and merges.
"""
from __future__ import annotations

import json
import os

from gguf_meta import read_gguf_meta

CONTROL, USER_DEFINED, BYTE = 3, 4, 6


def build_tokenizer_dir(vocab_gguf: str, out_dir: str) -> dict:
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors

    kv = read_gguf_meta(vocab_gguf)["kv"]
    tokens: list[str] = kv["tokenizer.ggml.tokens"]
    types: list[int] = kv["tokenizer.ggml.token_type"]
    merges = [tuple(m.split(" ")) for m in kv["tokenizer.ggml.merges"]]
    if len(set(tokens)) != len(tokens):
        raise ValueError("duplicate token strings: cannot build a BPE vocabulary")
    if any(len(m) != 2 for m in merges):
        raise ValueError("a merge does not split into two parts at its single space")

    vocab = {t: i for i, t in enumerate(tokens)}
    bpe = models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True)
    tok = Tokenizer(bpe)
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    control = [tokens[i] for i, t in enumerate(types) if t == CONTROL]
    user = [tokens[i] for i, t in enumerate(types) if t == USER_DEFINED]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in user])
    # BOS in front of every encoding with default special tokens (tok.encode(text)), as the released scripts rely
    # on; transformers takes the post-processor from tokenizer.json
    bos = tokens[kv["tokenizer.ggml.bos_token_id"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1", special_tokens=[(bos, kv["tokenizer.ggml.bos_token_id"])])

    os.makedirs(out_dir, exist_ok=True)
    tok_json = json.loads(tok.to_str())
    # merges as "a b" strings (the format older tokenizer.json files use; no token contains a space): a third
    # of the parse time of the pair lists, and the 514,906-item file is parsed a dozen times per conversion
    tok_json["model"]["merges"] = [f"{a} {b}" for a, b in tok_json["model"]["merges"]]
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok_json, f, ensure_ascii=False)
    gguf_keys = {"pad_token": "padding", "eos_token": "eos", "bos_token": "bos", "unk_token": "unknown",
                 "mask_token": "mask"}
    named_strs = {k: tokens[kv[f"tokenizer.ggml.{g}_token_id"]] for k, g in gguf_keys.items()}
    config = {
        "tokenizer_class": "GemmaTokenizer",
        **named_strs,
        # the other CONTROL tokens: special in transformers' sense, so the converter marks them CONTROL
        "extra_special_tokens": [t for t in control if t not in named_strs.values()],
        "padding_side": "left",
        "model_max_length": 131072,
    }
    if "tokenizer.chat_template" in kv:
        config["chat_template"] = kv["tokenizer.chat_template"]
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=1)
    return {"n_tokens": len(tokens), "n_merges": len(merges), "control": control, "user_defined": user}


def load_hf_cases(vocab_gguf: str) -> list[tuple[str, list[int]]]:
    with open(vocab_gguf + ".inp", encoding="utf-8") as f:
        inp = f.read().split("\n__ggml_vocab_test__\n")
    with open(vocab_gguf + ".out", encoding="utf-8") as f:
        out = f.read().split("\n")
    if out and out[-1] == "":
        out.pop()
    if len(inp) != len(out):
        raise ValueError(f"vocab test files disagree: {len(inp)} inputs, {len(out)} outputs")
    return [(t, [int(x) for x in o.split()]) for t, o in zip(inp, out)]


def check_hf_cases(tokenizer, vocab_gguf: str) -> dict:
    """Hugging Face's reference ids (add_special_tokens=False) vs this tokenizer."""
    cases = load_hf_cases(vocab_gguf)
    bad = []
    for text, ids in cases:
        got = tokenizer.encode(text, add_special_tokens=False)
        if got != ids:
            bad.append({"text": text, "want": ids, "got": got})
    return {"cases": len(cases), "failed": bad}
