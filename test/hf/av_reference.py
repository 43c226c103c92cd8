"""AV (verbalizer) reference: greedy generation with one input-embedding row replaced, as the released scripts do.

nla-protocol.md §1.3/§1.5: the prompt ends with `<concept>㊗</concept>`; a forward hook on
`model.get_input_embeddings()` finds, in each batch row, the first position where the token trio
(left 236813, marker 249568, right 954) occurs and overwrites the marker's row of the embedding output (already
scaled by √d) with the activation scaled to norm √d. PLE still looks the marker's id up (gemma4.md §4). Then
`generate(do_sample=False, max_new_tokens=N, pad_token_id=eos)`; the new tokens are decoded with
skip_special_tokens=True.

Command line (writes JSON: prompt ids, marker position, generated ids and text, per-step top logits, and the
raw per-step logits as little-endian f32 [steps, vocab] in --logits):

  .cache/hf-venv/bin/python test/hf/av_reference.py --model DIR/hf --adapter DIR/av \
      --vector vec.json --out av.json [--logits av.f32] [--max-new-tokens 120] [--prompt-file p.txt]

vec.json is a JSON list of d_model numbers (e.g. an `activation()` result). --adapter none runs the base model.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")  # see build.py

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def find_marker(ids: list[int], left: int, marker: int, right: int) -> int:
    for i in range(1, len(ids) - 1):
        if ids[i - 1] == left and ids[i] == marker and ids[i + 1] == right:
            return i
    return -1


def run_av(model, tok, prompt: str, vec, av: dict, logits_path: str | None, top: int = 10) -> dict:
    import torch

    ids = tok.encode(prompt)
    left, marker, right = av["left_id"], av["marker_id"], av["right_id"]
    pos = find_marker(ids, left, marker, right)
    if pos < 0:
        raise ValueError(f"the prompt has no ({left}, {marker}, {right}) trio: the tokenizer or template drifted")
    d = model.get_input_embeddings().weight.shape[1]
    v = vec.float().reshape(-1)
    if v.numel() != d:
        raise ValueError(f"the vector has {v.numel()} values, d_model is {d}")
    scaled = v / v.norm() * math.sqrt(d)
    replaced: list[tuple[int, int]] = []

    def hook(_mod, args, out):
        input_ids = args[0]
        for b in range(input_ids.shape[0]):
            row = input_ids[b].tolist()
            p = find_marker(row, left, marker, right)
            if p >= 0:
                out[b, p] = scaled.to(out.dtype)
                replaced.append((b, p))
        return out

    h = model.get_input_embeddings().register_forward_hook(hook)
    try:
        with torch.no_grad():
            eos = tok.eos_token_id
            g = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=av["max_new_tokens"], do_sample=False,
                               pad_token_id=eos, output_logits=True, return_dict_in_generate=True)
    finally:
        h.remove()
    new = g.sequences[0, len(ids):].tolist()
    steps = []
    for s, lg in enumerate(g.logits):
        row = lg[0].float()
        vals, idx = torch.topk(row, top)
        steps.append({"argmax": int(row.argmax()), "top": [[int(i), float(x)] for i, x in zip(idx, vals)]})
    if logits_path:
        torch.stack([lg[0].float() for lg in g.logits]).numpy().astype("<f4").tofile(logits_path)
    return {
        "prompt_ids": ids,
        "marker_position": pos,
        "hook_replacements": replaced,  # (batch row, position): the prefill only; decode steps see one token
        "scaled_norm": float(scaled.norm()),
        "tokens": new,
        "text": tok.decode(new, skip_special_tokens=True),
        "steps": steps,
        "logits_file": os.path.basename(logits_path) if logits_path else None,
        "vocab": int(g.logits[0].shape[-1]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="HF model folder (with the tokenizer)")
    ap.add_argument("--adapter", required=True, help="PEFT adapter folder, or 'none'")
    ap.add_argument("--vector", required=True, help="JSON list of d_model numbers")
    ap.add_argument("--out", required=True)
    ap.add_argument("--logits", default=None)
    ap.add_argument("--spec", default=os.path.join(HERE, "spec.json"))
    ap.add_argument("--prompt-file", default=None)
    ap.add_argument("--max-new-tokens", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch
    from transformers import AutoTokenizer

    from reference import load_base

    torch.set_num_threads(args.threads)
    with open(args.spec, encoding="utf-8") as f:
        av = dict(json.load(f)["av"])
    if args.max_new_tokens is not None:
        av["max_new_tokens"] = args.max_new_tokens
    prompt = av["prompt"]
    if args.prompt_file:
        with open(args.prompt_file, encoding="utf-8") as f:
            prompt = f.read()
    with open(args.vector, encoding="utf-8") as f:
        vec = torch.tensor(json.load(f), dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = load_base(args.model, torch.float32)
    if args.adapter != "none":
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, args.adapter).eval()
    res = run_av(model, tok, prompt, vec, av, args.logits)
    res["settings"] = {**av, "prompt": prompt, "adapter": args.adapter}
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(res, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
