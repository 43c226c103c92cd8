"""Builds the Hugging Face reference set for the differential tests (test/hf-reference.test.ts).

  python test/hf/build.py --out DIR --llama-cpp .cache/reference/llama.cpp --llama-ref .cache/reference/bin/llama_ref

Into DIR (written as DIR.tmp-*, renamed when complete):
  tokenizer/             tokenizer.json + tokenizer_config.json for the real Gemma-4 vocabulary (hf_tokenizer.py)
  hf/                    a random Gemma4ForConditionalGeneration (text only) saved by save_pretrained, with the tokenizer
  hf601/ (removed after conversion)  the same checkpoint plus k_proj/v_proj/k_norm on the KV-shared layers (the
                         layout of Google's original safetensors; transformers ignores those tensors when loading)
  ar/, av/               PEFT adapters saved by save_pretrained (AR-shaped: q/k/v/o, with linear_head.pt from torch.save;
                         AV-shaped: attention + MLP)
  ar-lora.gguf, av-lora.gguf   the same adapters converted by llama.cpp's convert_lora_to_gguf.py
  model.{f32,f16,bf16}.gguf    convert_hf_to_gguf.py --outtype ...
  model.{q8_0,q4_k_m}.gguf     llama.cpp's quantizer (llama_ref quantize) from model.f32.gguf
  model601.f32.gguf      convert_hf_to_gguf.py of hf601/
  reference.json         transformers + PEFT outputs (reference.py) and the converter's layout (manifest)
"""
from __future__ import annotations

import argparse
import json
import math
import os

# One thread per process: these models are tiny, and OpenMP's thread hand-offs on a busy 2-core machine cost
# far more than they save (a 128x128 product measured 60 ms with 2 threads under load, 0.05 ms with 1).
os.environ.setdefault("OMP_NUM_THREADS", "1")
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from gguf_meta import read_gguf_meta  # noqa: E402
from hf_tokenizer import build_tokenizer_dir, check_hf_cases  # noqa: E402


def log(msg: str) -> None:
    print(f"[hf-build {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def make_config(spec: dict):
    from transformers import Gemma4Config, Gemma4TextConfig

    tc = dict(spec["text_config"])
    n = tc["num_hidden_layers"]
    every = spec["full_every"]
    tc["layer_types"] = ["full_attention" if (i + 1) % every == 0 else "sliding_attention" for i in range(n)]
    text = Gemma4TextConfig(**tc)
    cfg = Gemma4Config(text_config=text, vision_config=None, audio_config=None, tie_word_embeddings=True)
    cfg.architectures = ["Gemma4ForConditionalGeneration"]
    return cfg


def init_weights(model, spec: dict) -> None:
    """Scaled so that depth is not chaotic (design/numerics.md, "Making synthetic models that test something")."""
    import torch

    g = torch.Generator().manual_seed(spec["seed"])
    ini = spec["init"]
    tc = model.config.text_config
    lm = model.model.language_model

    def normal_(t, std):
        with torch.no_grad():
            t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float32) * std)

    def uniform_(t, lo, hi):
        with torch.no_grad():
            t.copy_(lo + (hi - lo) * torch.rand(t.shape, generator=g, dtype=torch.float32))

    d = tc.hidden_size
    normal_(lm.embed_tokens.weight, d ** -0.5)  # x sqrt(d) in the forward: unit RMS
    p = tc.hidden_size_per_layer_input
    normal_(lm.embed_tokens_per_layer.weight, p ** -0.5)  # x sqrt(p) in the forward
    normal_(lm.per_layer_model_projection.weight, d ** -0.5)
    uniform_(lm.per_layer_projection_norm.weight, *ini["pre_norm"])
    uniform_(lm.norm.weight, *ini["pre_norm"])
    for layer in lm.layers:
        for name, mod in layer.named_modules():
            if isinstance(mod, torch.nn.Linear):
                normal_(mod.weight, mod.in_features ** -0.5)
        uniform_(layer.input_layernorm.weight, *ini["pre_norm"])
        uniform_(layer.pre_feedforward_layernorm.weight, *ini["pre_norm"])
        uniform_(layer.post_attention_layernorm.weight, *ini["post_norm"])
        uniform_(layer.post_feedforward_layernorm.weight, *ini["post_norm"])
        uniform_(layer.post_per_layer_input_norm.weight, *ini["post_norm"])
        attn = layer.self_attn
        # unit-RMS q and k of width D give q.k a std of sqrt(D); scale both norms so it is ~qk_logit_std
        m = math.sqrt(ini["qk_logit_std"] / math.sqrt(attn.head_dim))
        uniform_(attn.q_norm.weight, 0.95 * m, 1.05 * m)
        if hasattr(attn, "k_norm"):
            uniform_(attn.k_norm.weight, 0.95 * m, 1.05 * m)
        uniform_(layer.layer_scalar, *ini["layer_scalar"])


def save_hf_model(spec: dict, out: str, tok_dir: str):
    import torch
    from transformers import Gemma4ForConditionalGeneration

    cfg = make_config(spec)
    torch.manual_seed(spec["seed"])
    model = Gemma4ForConditionalGeneration(cfg).to(torch.float32).eval()
    init_weights(model, spec)
    model.save_pretrained(out, safe_serialization=True)
    for f in os.listdir(tok_dir):
        shutil.copy(os.path.join(tok_dir, f), os.path.join(out, f))
    return model


def add_shared_kv_tensors(src: str, dst: str, spec: dict) -> list[str]:
    """hf601/: the checkpoint with k_proj/v_proj/k_norm on the KV-shared layers as in Google's original files."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    files = [f for f in os.listdir(dst) if f.endswith(".safetensors")]
    if len(files) != 1:
        raise RuntimeError(f"expected one safetensors file in {dst}, found {files}")
    path = os.path.join(dst, files[0])
    sd = load_file(path)
    tc = spec["text_config"]
    n = tc["num_hidden_layers"]
    first_shared = n - tc["num_kv_shared_layers"]
    every = spec["full_every"]
    g = torch.Generator().manual_seed(spec["seed"] + 601)
    prefix = next(k for k in sd if k.endswith("layers.0.self_attn.q_proj.weight"))[: -len("layers.0.self_attn.q_proj.weight")]
    added = []
    for i in range(first_shared, n):
        hd = tc["global_head_dim"] if (i + 1) % every == 0 else tc["head_dim"]
        kvw = tc["num_key_value_heads"] * hd
        for proj in ("k_proj", "v_proj"):
            k = f"{prefix}layers.{i}.self_attn.{proj}.weight"
            sd[k] = torch.randn((kvw, tc["hidden_size"]), generator=g) * tc["hidden_size"] ** -0.5
            added.append(k)
        k = f"{prefix}layers.{i}.self_attn.k_norm.weight"
        sd[k] = torch.ones(hd) * 3.0  # a value that would visibly change the result if it were used
        added.append(k)
    save_file(sd, path, metadata={"format": "pt"})
    return added


def make_adapter(model, spec_a: dict, out: str, seed: int) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=spec_a["r"], lora_alpha=spec_a["lora_alpha"], lora_dropout=spec_a["lora_dropout"],
                     target_modules=spec_a["target_modules"], bias="none", task_type="CAUSAL_LM")
    pm = get_peft_model(model, cfg)
    g = torch.Generator().manual_seed(seed)
    n_b = 0
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_B" in name:  # PEFT initialises B to zero: a trained adapter has it non-zero
                p.copy_(torch.randn(p.shape, generator=g) * spec_a["lora_b_std"])
                n_b += 1
    pm.save_pretrained(out)
    info = {"lora_B_tensors": n_b}
    if spec_a.get("head"):
        d = model.config.text_config.hidden_size
        torch.manual_seed(seed + 1)
        head = torch.nn.Linear(d, d)
        # keep_vars=True pickles nn.Parameters, as the released linear_head.pt does (nla-protocol.md §5)
        torch.save(head.state_dict(keep_vars=True), os.path.join(out, "linear_head.pt"))
        info["head"] = "linear_head.pt"
    base = pm.unload()  # the base model without LoRA layers, for the next adapter
    return info, base


def run_all(cmds: list[list[str]], jobs: int, env: dict | None = None) -> None:
    """Runs the commands, `jobs` at a time (the converters are single-threaded Python)."""
    pending = list(cmds)
    running: list[tuple[list[str], subprocess.Popen, float]] = []
    failed = None
    while pending or running:
        while pending and len(running) < jobs and failed is None:
            cmd = pending.pop(0)
            log(" ".join(os.path.basename(c) if i < 2 else c for i, c in enumerate(cmd)))
            running.append((cmd, subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                  text=True), time.time()))
        cmd, proc, t = running.pop(0)
        output, _ = proc.communicate()
        log(f"  {os.path.basename(cmd[1] if len(cmd) > 1 else cmd[0])} {cmd[-1] if len(cmd) else ''}: "
            f"{time.time() - t:.0f} s")
        if proc.returncode != 0 and failed is None:
            sys.stdout.write(output[-20000:])
            failed = cmd
            pending.clear()
    if failed:
        raise RuntimeError(f"command failed: {' '.join(failed)}")


def layout(path: str) -> dict:
    m = read_gguf_meta(path)
    kv = {k: v for k, v in m["kv"].items() if not k.startswith("tokenizer.ggml.") or k.endswith("_id")
          or isinstance(v, (bool, int, float, str))}
    kv = {k: (v if not isinstance(v, str) or len(v) < 200 else f"<{len(v)} chars>") for k, v in kv.items()}
    types: dict[str, int] = {}
    for t in m["tensors"]:
        types[t["type"]] = types.get(t["type"], 0) + 1
    return {"file": os.path.basename(path), "bytes": os.path.getsize(path), "n_tensors": len(m["tensors"]),
            "tensor_types": types, "kv": kv, "tensors": m["tensors"]}


def check_vocab_roundtrip(converted: str, vocab_gguf: str) -> dict:
    """The converter must give back the released vocabulary: same tokens, token types and merges."""
    a = read_gguf_meta(converted)["kv"]
    b = read_gguf_meta(vocab_gguf)["kv"]
    res = {}
    for k in ("tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
              "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
              "tokenizer.ggml.padding_token_id", "tokenizer.ggml.mask_token_id", "tokenizer.ggml.add_bos_token",
              "tokenizer.ggml.add_space_prefix", "tokenizer.chat_template"):
        va, vb = a.get(k), b.get(k)
        if va == vb:
            res[k] = "equal"
        elif isinstance(va, list) and isinstance(vb, list) and len(va) == len(vb):
            diff = [i for i in range(len(va)) if va[i] != vb[i]]
            res[k] = f"{len(diff)} of {len(va)} differ, first at {diff[:5]}: {[va[i] for i in diff[:5]]} vs {[vb[i] for i in diff[:5]]}"
        else:
            res[k] = f"differs: {str(va)[:80]!r} vs {str(vb)[:80]!r}"
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--llama-cpp", required=True, help="llama.cpp source tree (convert_hf_to_gguf.py, gguf-py, models/)")
    ap.add_argument("--llama-ref", required=True, help="llama_ref binary (quantize)")
    ap.add_argument("--spec", default=os.path.join(HERE, "spec.json"))
    ap.add_argument("--jobs", type=int, default=2, help="conversions run at the same time")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    with open(args.spec, encoding="utf-8") as f:
        spec = json.load(f)
    final = os.path.abspath(args.out)
    out = f"{final}.tmp-{os.getpid()}"
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    t0 = time.time()
    vocab_gguf = os.path.join(args.llama_cpp, "models", "ggml-vocab-gemma-4.gguf")

    log("tokenizer from the vocab GGUF")
    tok_dir = os.path.join(out, "tokenizer")
    build_tokenizer_dir(vocab_gguf, tok_dir)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tok_dir)
    cases = check_hf_cases(tok, vocab_gguf)
    if cases["failed"]:
        raise RuntimeError(f"the built tokenizer misses {len(cases['failed'])} of Hugging Face's {cases['cases']} "
                           f"reference tokenizations, first: {cases['failed'][0]}")

    log("HF model")
    hf_dir = os.path.join(out, "hf")
    model = save_hf_model(spec, hf_dir, tok_dir)
    hf601_dir = os.path.join(out, "hf601")
    added601 = add_shared_kv_tensors(hf_dir, hf601_dir, spec)

    log("PEFT adapters")
    adapters = {}
    for i, (name, sa) in enumerate(spec["adapters"].items()):
        info, model = make_adapter(model, sa, os.path.join(out, name), spec["seed"] + 100 * (i + 1))
        adapters[name] = info
    del model

    env = dict(os.environ)  # the converters put their own gguf-py first on sys.path
    conv = os.path.join(args.llama_cpp, "convert_hf_to_gguf.py")
    conv_lora = os.path.join(args.llama_cpp, "convert_lora_to_gguf.py")
    ggufs = {t: os.path.join(out, f"model.{t}.gguf") for t in spec["ggufs"]}
    p601 = os.path.join(out, "model601.f32.gguf")
    loras = {name: os.path.join(out, f"{name}-lora.gguf") for name in spec["adapters"]}
    cmds = [[sys.executable, conv, hf_dir, "--outtype", "f32", "--outfile", ggufs["f32"]]]
    cmds += [[sys.executable, conv, hf_dir, "--outtype", t, "--outfile", ggufs[t]] for t in ("f16", "bf16")]
    cmds += [[sys.executable, conv, hf601_dir, "--outtype", "f32", "--outfile", p601]]
    cmds += [[sys.executable, conv_lora, "--base", hf_dir, "--outtype", "f32", "--outfile", p, os.path.join(out, name)]
             for name, p in loras.items()]
    run_all(cmds, args.jobs, env)
    shutil.rmtree(hf601_dir)  # a second 270 MB checkpoint, needed only to make model601.f32.gguf
    run_all([[args.llama_ref, "quantize", "--in", ggufs["f32"], "--out", ggufs[t], "--type", t, "--threads", "1"]
             for t in ("q8_0", "q4_k_m")], args.jobs)
    loras = {name: os.path.basename(p) for name, p in loras.items()}

    log("references (transformers + PEFT, float32, CPU)")
    from reference import compute_references

    refs = compute_references(out, spec)

    manifest = {
        "spec": spec,
        "versions": versions(),
        "tokenizer_hf_cases": {"cases": cases["cases"], "failed": len(cases["failed"])},
        "vocab_roundtrip": check_vocab_roundtrip(ggufs["f32"], vocab_gguf),
        "adapters": adapters,
        "lora_ggufs": loras,
        "ggufs": {t: os.path.basename(p) for t, p in ggufs.items()},
        "gguf601": os.path.basename(p601),
        "hf601_added": added601,
        "layouts": {t: layout(p) for t, p in {**ggufs, "601_f32": p601}.items()},
        "adapter_files": {name: adapter_layout(os.path.join(out, name)) for name in spec["adapters"]},
        "references": refs,
        "build_seconds": round(time.time() - t0, 1),
    }
    with open(os.path.join(out, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, ensure_ascii=False)
    shutil.rmtree(final, ignore_errors=True)
    os.rename(out, final)
    log(f"done in {time.time() - t0:.0f} s: {final}")


def adapter_layout(d: str) -> dict:
    from safetensors import safe_open

    with open(os.path.join(d, "adapter_config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    names = {}
    with safe_open(os.path.join(d, "adapter_model.safetensors"), "pt") as f:
        for k in f.keys():
            t = f.get_slice(k)
            names[k] = {"dtype": str(t.get_dtype()), "shape": list(t.get_shape())}
    return {"config": cfg, "tensors": names, "files": sorted(os.listdir(d))}


def versions() -> dict:
    import peft
    import safetensors
    import tokenizers
    import torch
    import transformers

    return {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "tokenizers": tokenizers.__version__, "safetensors": safetensors.__version__}


if __name__ == "__main__":
    main()
