"""Reference outputs computed by transformers + PEFT on CPU, the way the released NLA scripts compute them.

AR (nla-protocol.md §1.7): PeftModel.from_pretrained(base, adapter), a forward hook on
`<peft>.base_model.model.model.language_model.layers[L]`, the whole model run on `tok.encode(prompt)` (BOS
first, default special tokens), the hooked block output at the last token in fp32, then the fp32 head loaded
with torch.load(linear_head.pt).
Activation (§1.2): the base model (no adapter), a hook on `model.language_model.layers[23]`, raw text.
"""
from __future__ import annotations

import contextlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def _vec(t) -> list[float]:
    return [float(x) for x in t.reshape(-1).tolist()]


@contextlib.contextmanager
def capture(layers, idx: list[int]):
    """Forward hooks on the given decoder blocks; yields {idx: output tensor [batch, seq, d]}."""
    got: dict[int, object] = {}
    hooks = []
    for i in idx:
        def fn(_mod, _args, out, i=i):
            got[i] = (out[0] if isinstance(out, tuple) else out).detach()
        hooks.append(layers[i].register_forward_hook(fn))
    try:
        yield got
    finally:
        for h in hooks:
            h.remove()


def load_base(hf_dir: str, dtype):
    from transformers import Gemma4ForConditionalGeneration

    m = Gemma4ForConditionalGeneration.from_pretrained(hf_dir, dtype=dtype)
    return m.eval()


def load_head(adapter_dir: str):
    import torch

    sd = torch.load(os.path.join(adapter_dir, "linear_head.pt"))
    w = sd["weight"]
    head = torch.nn.Linear(w.shape[1], w.shape[0], bias=True)
    head.load_state_dict(sd)
    return head.float().eval()


def block_outputs(model, layers, ids: list[int], idx: list[int], all_positions: bool = False) -> dict[int, list[float]]:
    import torch

    with torch.no_grad(), capture(layers, idx) as got:
        # logits_to_keep=1: the LM head only for the last position (it does not change any block output)
        model(input_ids=torch.tensor([ids]), logits_to_keep=1)
    out = {}
    for i in idx:
        h = got[i][0].float()
        out[i] = _vec(h if all_positions else h[-1])
    return out


def compute_references(out_dir: str, spec: dict, dtypes: tuple[str, ...] = ("float32", "bfloat16", "float16")) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    hf_dir = os.path.join(out_dir, "hf")
    tok = AutoTokenizer.from_pretrained(hf_dir)
    L = spec["layer"]
    LA = spec["activation_layer"]
    n_layers = spec["text_config"]["num_hidden_layers"]
    prompts = [spec["template"].replace("{explanation}", e) for e in spec["explanations"]]
    prompt_ids = [tok.encode(p) for p in prompts]
    text_ids = [tok.encode(t) for t in spec["texts"]]
    head = load_head(os.path.join(out_dir, "ar"))
    refs: dict = {"prompts": prompts, "prompt_ids": prompt_ids, "texts": spec["texts"], "text_ids": text_ids,
                  "attn_implementation": None, "variants": {}}

    for dt in dtypes:
        dtype = getattr(torch, dt)
        base = load_base(hf_dir, dtype)
        if dt == "float32":
            refs["attn_implementation"] = base.config._attn_implementation
            # the base model, no adapter: block-23 activation of raw text (§1.2) and block L of the AR prompts
            lm_layers = base.model.language_model.layers
            refs["activation"] = [block_outputs(base, lm_layers, ids, [LA])[LA] for ids in text_ids]
            base_l = [block_outputs(base, lm_layers, ids, [L, n_layers - 1]) for ids in prompt_ids]
            refs["base"] = {"block": [b[L] for b in base_l], "last_block": [b[n_layers - 1] for b in base_l]}
            with torch.no_grad():
                refs["base"]["head"] = [_vec(head(torch.tensor(h))) for h in refs["base"]["block"]]
            refs["base"]["all_positions"] = block_outputs(base, lm_layers, prompt_ids[2], [L], True)[L]

        ar = PeftModel.from_pretrained(base, os.path.join(out_dir, "ar")).eval()
        layers = ar.base_model.model.model.language_model.layers
        blocks = [block_outputs(ar, layers, ids, [L])[L] for ids in prompt_ids]
        with torch.no_grad():
            heads = [_vec(head(torch.tensor(h))) for h in blocks]
        if dt == "float32":
            refs["ar"] = {"block": blocks, "head": heads,
                          "all_positions": block_outputs(ar, layers, prompt_ids[2], [L], True)[L]}
            # the adapter off again through PEFT's own switch must give the base numbers back
            with ar.disable_adapter():
                off = [block_outputs(ar, layers, ids, [L])[L] for ids in prompt_ids]
            refs["ar"]["disable_adapter_equals_base"] = off == refs["base"]["block"]
        else:
            refs["variants"][dt] = {"ar_block": blocks, "ar_head": heads}
        del ar, base

    # AV-shaped adapter (attention + MLP LoRA) on raw text, at block L and at the last block
    base = load_base(hf_dir, torch.float32)
    av = PeftModel.from_pretrained(base, os.path.join(out_dir, "av")).eval()
    layers = av.base_model.model.model.language_model.layers
    outs = [block_outputs(av, layers, ids, [L, n_layers - 1]) for ids in text_ids]
    refs["av"] = {"block": [o[L] for o in outs], "last_block": [o[n_layers - 1] for o in outs],
                  "last_layer": n_layers - 1}
    with av.disable_adapter():
        base_txt = [block_outputs(av, layers, ids, [L, n_layers - 1]) for ids in text_ids]
    refs["base_text"] = {"block": [o[L] for o in base_txt], "last_block": [o[n_layers - 1] for o in base_txt]}

    # f32 compute on weights rounded to bf16 / f16: what a 16-bit GGUF holds, without HF's 16-bit activations
    for dt in ("bfloat16", "float16"):
        base = load_base(hf_dir, torch.float32)
        with torch.no_grad():
            for name, p in base.named_parameters():
                if p.dim() == 2:  # matrices only: the converter keeps norms and scalars in f32
                    p.copy_(p.to(getattr(torch, dt)).float())
        ar = PeftModel.from_pretrained(base, os.path.join(out_dir, "ar")).eval()
        layers = ar.base_model.model.model.language_model.layers
        blocks = [block_outputs(ar, layers, ids, [L])[L] for ids in prompt_ids]
        with torch.no_grad():
            heads = [_vec(head(torch.tensor(h))) for h in blocks]
        refs["variants"][f"f32_compute_{dt}_weights"] = {"ar_block": blocks, "ar_head": heads}
        del ar, base

    # the attention kernel: the eager path (explicit fp32 softmax) instead of SDPA, f32
    from transformers import Gemma4ForConditionalGeneration

    base = Gemma4ForConditionalGeneration.from_pretrained(hf_dir, dtype=torch.float32, attn_implementation="eager").eval()
    ar = PeftModel.from_pretrained(base, os.path.join(out_dir, "ar")).eval()
    layers = ar.base_model.model.model.language_model.layers
    blocks = [block_outputs(ar, layers, ids, [L])[L] for ids in prompt_ids]
    with torch.no_grad():
        heads = [_vec(head(torch.tensor(h))) for h in blocks]
    refs["variants"]["float32_eager"] = {"ar_block": blocks, "ar_head": heads}
    del ar, base

    # bf16 with the embedding scale kept in fp32 (as llama.cpp and nla-ar do): isolates HF's cast of sqrt(d)
    # to the weight dtype (sqrt(128) = 11.3137 becomes 11.3125 in bf16)
    base = load_base(hf_dir, torch.bfloat16)
    emb = base.model.language_model.embed_tokens

    def fp32_scale(input_ids, emb=emb):
        w = torch.nn.functional.embedding(input_ids, emb.weight, emb.padding_idx)
        return (w.float() * emb.scalar_embed_scale).to(emb.weight.dtype)

    emb.forward = fp32_scale
    ar = PeftModel.from_pretrained(base, os.path.join(out_dir, "ar")).eval()
    layers = ar.base_model.model.model.language_model.layers
    blocks = [block_outputs(ar, layers, ids, [L])[L] for ids in prompt_ids]
    with torch.no_grad():
        heads = [_vec(head(torch.tensor(h))) for h in blocks]
    refs["variants"]["bfloat16_fp32_embed_scale"] = {"ar_block": blocks, "ar_head": heads}
    del ar, base

    # f32 with sqrt(d) replaced by its bf16 value, and by the relative change the cast makes for E2B
    # (sqrt(1536) = 39.1918 -> 39.25 in bf16, +0.15 %; for this model's d it is only -0.01 %): the cast alone,
    # without bf16 arithmetic
    s_e2b = float(torch.tensor(1536 ** 0.5).to(torch.bfloat16)) / 1536 ** 0.5
    for name, factor in (("float32_embed_scale_as_bf16", float(torch.tensor(emb.scalar_embed_scale).to(torch.bfloat16)) / emb.scalar_embed_scale),
                         ("float32_embed_scale_e2b_bf16_ratio", s_e2b)):
        base = load_base(hf_dir, torch.float32)
        e = base.model.language_model.embed_tokens
        with torch.no_grad():
            e.embed_scale.fill_(e.scalar_embed_scale * factor)
        ar = PeftModel.from_pretrained(base, os.path.join(out_dir, "ar")).eval()
        layers = ar.base_model.model.model.language_model.layers
        blocks = [block_outputs(ar, layers, ids, [L])[L] for ids in prompt_ids]
        with torch.no_grad():
            heads = [_vec(head(torch.tensor(h))) for h in blocks]
        refs["variants"][name] = {"ar_block": blocks, "ar_head": heads, "scale_factor": factor}
    refs["embed_scale"] = {"fp32": float(emb.scalar_embed_scale),
                           "bfloat16": float(torch.tensor(emb.scalar_embed_scale).to(torch.bfloat16)),
                           "float16": float(torch.tensor(emb.scalar_embed_scale).to(torch.float16))}
    del ar, base

    # AV reference smoke run (av_reference.py): greedy generate with the marker row replaced
    from av_reference import run_av

    base = load_base(hf_dir, torch.float32)
    av = PeftModel.from_pretrained(base, os.path.join(out_dir, "av")).eval()
    vec = torch.tensor(refs["activation"][0])
    refs["av_generate"] = run_av(av, tok, spec["av"]["prompt"], vec, spec["av"], os.path.join(out_dir, "av-logits.f32"))
    other = run_av(av, tok, spec["av"]["prompt"], torch.tensor(refs["activation"][1]), spec["av"], None)
    refs["av_generate_other_vector"] = {"tokens": other["tokens"], "first_step_top": other["steps"][0]["top"]}
    return refs
