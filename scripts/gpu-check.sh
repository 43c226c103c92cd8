#!/usr/bin/env bash
# GPU verification of the CUDA backend (issue 4). Run on a machine with an NVIDIA GPU (driver >= 580 for CUDA 13):
#
#   scripts/gpu-check.sh                # build, CUDA-vs-CPU differential checks, E2B-shape timings, Python reference
#   scripts/gpu-check.sh --dry-run      # check arguments and prerequisites, write the helper scripts, print the plan
#   scripts/gpu-check.sh --cpu-only     # everything that needs no GPU: tiny models, the harness with the CPU backend
#                                       # standing in for CUDA (must give rel-RMS 0), timings on the CPU, python syntax
#   scripts/gpu-check.sh --prepare      # only generate the models into --work (no GPU, no build beyond lib/); the
#                                       # E2B-shape model takes several minutes to generate once, so do this first
#   options: --skip-build   use the binaries already built (build/, variants/cuda/build/, lib/, dist-tools/)
#            --no-e2b       skip the E2B-shape model (generation + q4_k_m quantization + timings)
#            --no-python    skip the transformers/peft/torch comparison
#            --e2b          with --cpu-only: also generate the E2B-shape model and time batch 1 on the CPU (slow)
#            --work DIR     scratch/cache folder (default .cache/gpu-check; models are cached there between runs)
#            --budget S     overall time budget in seconds (default 470: the whole check must stay under 8 minutes)
#
# Prints one summary table at the end; exit status 0 when every differential check passed.
# Needs: node_modules (npm ci), CMake >= 3.25 and nvcc (CUDA 13) for the build; .cache/reference/bin/llama_ref
# (scripts/setup-reference.sh) for the llama.cpp-quantized k-quant models and the q4_k_m E2B model; for the
# Python part: python3 with torch, transformers (>= 5.5.2, with Gemma 4), peft, numpy, and gguf-py from
# .cache/reference/llama.cpp/gguf-py.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

mode=cuda
dry=0
prepare=0
build=1
e2b=1
e2b_cpu=0
python=1
work="$ROOT/.cache/gpu-check"
budget=470
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) dry=1 ;;
    --prepare) prepare=1 ;;
    --cpu-only) mode=cpu ;;
    --skip-build) build=0 ;;
    --no-e2b) e2b=0 ;;
    --e2b) e2b_cpu=1 ;;
    --no-python) python=0 ;;
    --work) shift; [[ $# -gt 0 ]] || { echo "gpu-check: --work needs a folder" >&2; exit 2; }; work="$1" ;;
    --budget) shift; [[ "${1:-}" =~ ^[0-9]+$ ]] || { echo "gpu-check: --budget needs seconds" >&2; exit 2; }; budget="$1" ;;
    -h|--help) sed -n 2,20p "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ $mode == cpu ]]; then
  [[ $e2b_cpu == 1 ]] || e2b=0
fi
mkdir -p "$work"
work=$(cd "$work" && pwd)
start=$SECONDS
results="$work/results.jsonl"

# ---------------------------------------------------------------- helper scripts (written every run)

cat > "$work/harness.js" <<'JS'
// Differential checks (candidate backend vs the CPU backend) and timings. Argument: a JSON config.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const cfg = JSON.parse(process.argv[2]);
const ROOT = cfg.root;
const syn = require(path.join(ROOT, 'dist-tools', 'tools', 'synthetic'));  // the test-model generator (npm run build:tools)
const out = (row) => fs.appendFileSync(cfg.results, JSON.stringify(row) + '\n');
const deadline = Date.now() + cfg.budgetMs;

const cpuBinding = cfg.prepare ? null : require(path.join(ROOT, 'build', 'Release', 'nla_ar.node'));
let cand = cpuBinding, candDevice = 'cpu';
if (cfg.mode === 'cuda' && !cfg.prepare) {
  cand = require(path.join(ROOT, 'variants', 'cuda', 'build', 'Release', 'nla_ar_cuda.node'));
  const n = cand.cudaDeviceCount();
  if (!(n > 0)) throw new Error(`the CUDA binary reports no device (cudaDeviceCount ${n})`);
  candDevice = 'cuda';
}
const llamaRef = path.join(ROOT, '.cache', 'reference', 'bin', 'llama_ref');
const haveRef = fs.existsSync(llamaRef);

function relRms(a, b) {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
  return Math.sqrt(num / (den || 1));
}
function cosine(a, b) {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { d += a[i] * b[i]; na += a[i] ** 2; nb += b[i] ** 2; }
  return d / Math.sqrt(na * nb);
}
function tokens(n, seed, vocab) {
  const t = new Int32Array(n);
  t[0] = 2;
  let s = seed >>> 0;
  for (let i = 1; i < n; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; t[i] = 300 + (s % (vocab - 300)); }
  return t;
}
function cached(file, make) {
  if (!fs.existsSync(file)) {
    const tmp = `${file}.tmp-${process.pid}`;
    make(tmp);
    fs.renameSync(tmp, file);
  }
  return file;
}
function tiny(name, overrides) {
  const config = syn.tinyGemma4Config(overrides);
  const file = cached(path.join(cfg.work, `tiny-${name}.gguf`), (tmp) => syn.writeSyntheticGemma4(tmp, config));
  return { file, config };
}
function quantized(base, type, threads) {
  const file = base.file.replace(/\.gguf$/, `.${type}.gguf`);
  cached(file, (tmp) => execFileSync(llamaRef, ['quantize', '--in', base.file, '--out', tmp, '--type', type, '--threads', String(threads)], { stdio: 'inherit' }));
  return { file, config: base.config };
}

async function open(binding, file, device, gelu) {
  return binding.openModel(file, { device, gelu, threads: cfg.threads || undefined });
}

// Every block output (l_out-i) of each prompt, all tokens.
async function blockOutputs(m, prompts, nLayer, adapter) {
  const caps = await m.forward(prompts, { captureLayers: Array.from({ length: nLayer }, (_, i) => i), allTokens: true, adapter });
  return caps.map((per) => per.map((c) => c.data));
}

// Tolerances of the CPU-vs-llama.cpp tests (test/engine-vs-llamacpp.test.ts), here with the CPU backend as reference:
//   f32 weights: rel-RMS <= 1e-4 at blocks 0-5, 2e-4 deeper; f16/bf16: <= 5e-3; quantized: cosine >= 0.999.
function verdict(kind, layer, rel, cos) {
  if (kind === 'f32') return rel <= (layer <= 5 ? 1e-4 : 2e-4);
  if (kind === '16bit') return rel <= 5e-3;
  return cos >= 0.999;
}

async function differential(name, model, kind, opts = {}) {
  if (Date.now() > deadline) { out({ section: 'diff', name, status: 'SKIP', note: 'time budget' }); return; }
  const t0 = Date.now();
  const gelu = opts.gelu || 'exact';
  const ref = await open(cpuBinding, model.file, 'cpu', gelu);
  const can = await open(cand, model.file, candDevice, gelu);
  try {
    const info = can.info();
    const vocab = model.config.vocab.tokens.length;
    const win = model.config.slidingWindow;
    const prompts = [tokens(Math.min(3 * win + 5, 64), 11, vocab), tokens(1, 5, vocab), tokens(17, 23, vocab)];
    let refAd, canAd;
    if (opts.adapterDir) { refAd = await ref.loadAdapter(opts.adapterDir); canAd = await can.loadAdapter(opts.adapterDir); }
    const a = await blockOutputs(ref, prompts, model.config.nLayer, refAd);
    const b = await blockOutputs(can, prompts, model.config.nLayer, canAd);
    let worstRel = 0, worstCos = 1, ok = true, where = '';
    for (let p = 0; p < prompts.length; p++)
      for (let l = 0; l < a[p].length; l++) {
        const rel = relRms(b[p][l], a[p][l]), cos = cosine(b[p][l], a[p][l]);
        if (!verdict(kind, l, rel, cos) || !Number.isFinite(rel)) { ok = false; where = where || `prompt ${p} block ${l}: rel ${rel.toExponential(2)} cos ${cos.toFixed(6)}`; }
        if (rel > worstRel || !Number.isFinite(rel)) worstRel = rel;
        if (cos < worstCos) worstCos = cos;
      }
    out({ section: 'diff', name, status: ok ? 'PASS' : 'FAIL', worstRel, worstCos, tol: kind, backend: info.backendDescription,
      note: where, seconds: (Date.now() - t0) / 1000 });
    if (opts.dump) {
      // The candidate's block outputs of prompt 0 for the Python reference comparison.
      const p = prompts[0];
      fs.writeFileSync(path.join(cfg.work, 'dump-tokens.json'), JSON.stringify(Array.from(p)));
      const all = new Float32Array(b[0].length * b[0][0].length);
      b[0].forEach((x, l) => all.set(x, l * x.length));
      fs.writeFileSync(path.join(cfg.work, 'dump-l_out.f32'), Buffer.from(all.buffer));
      fs.writeFileSync(path.join(cfg.work, 'dump-meta.json'), JSON.stringify({ model: model.file, nLayer: b[0].length, tokens: p.length, nEmbd: info.nEmbd, adapter: opts.adapterDir || null }));
    }
  } catch (e) {
    out({ section: 'diff', name, status: 'FAIL', note: String(e && e.message || e).split('\n')[0] });
  } finally {
    ref.close();
    can.close();
  }
}

async function timing(label, binding, device, file, adapterDir, layer, batch, promptLen, vocab, repeat) {
  if (Date.now() > deadline) { out({ section: 'time', name: label, status: 'SKIP', note: 'time budget' }); return; }
  const m = await open(binding, file, device, 'exact');
  try {
    const ad = adapterDir ? await m.loadAdapter(adapterDir) : undefined;
    const prompts = Array.from({ length: batch }, (_, i) => tokens(promptLen, 100 + i, vocab));
    const opts = { lastLayer: layer, captureLayers: [layer], adapter: ad };
    await m.forward([prompts[0]], opts); // warm-up: weight upload, kernels loaded
    const times = [];
    for (let r = 0; r < repeat; r++) {
      const t0 = process.hrtime.bigint();
      await m.forward(prompts, opts);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (Date.now() > deadline) break;
    }
    times.sort((x, y) => x - y);
    const med = times[Math.floor(times.length / 2)];
    out({ section: 'time', name: label, status: 'OK', ms: med, perPromptMs: med / batch, backend: m.info().backendDescription,
      note: `${batch} prompt(s) x ${promptLen} tokens, blocks 0..${layer} + LoRA, median of ${times.length}` });
  } catch (e) {
    out({ section: 'time', name: label, status: 'FAIL', note: String(e && e.message || e).split('\n')[0] });
  } finally {
    m.close();
  }
}

function prepareE2b() {
  const config = syn.e2bShapesConfig({ weightType: 'f16' });
  const f16 = cached(path.join(cfg.work, 'e2b-shapes-f16.gguf'), (tmp) => syn.writeSyntheticGemma4(tmp, config));
  const q4 = quantized({ file: f16, config }, 'q4_k_m', require('node:os').cpus().length);
  const ad = path.join(cfg.work, 'e2b-lora');
  if (!fs.existsSync(ad)) {
    const tmp = `${ad}.tmp-${process.pid}`;
    // The published AR's shape: rank 64, alpha 128, q/k/v/o (k/v only where the layer owns its KV).
    syn.writePeftAdapter(tmp, config, { targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], rank: 64, alpha: 128, seed: 9 });
    fs.renameSync(tmp, ad);
  }
  return { config, f16, q4, ad };
}

(async () => {
  if (cfg.prepare) {
    const t0 = Date.now();
    for (const [n, o] of [['f32-full', {}], ['f32-pruned', { layout: 'pruned' }], ['f32-fused', { fusedQkv: true }], ['f32-nov', { omitV: true }],
      ['f16-full', { weightType: 'f16' }], ['bf16-full', { weightType: 'bf16' }], ['q8_0-full', { weightType: 'q8_0' }], ['q4_0-full', { weightType: 'q4_0' }],
      ['q4_1-full', { weightType: 'q4_1' }], ['q5_0-full', { weightType: 'q5_0' }], ['q5_1-full', { weightType: 'q5_1' }]]) {
      const m = tiny(n, o);
      if (n === 'f32-full' && haveRef) for (const t of ['q4_k_m', 'q5_k_m', 'q6_k']) quantized(m, t, 2);
    }
    if (cfg.e2b && haveRef) prepareE2b();
    out({ section: 'prepare', name: 'models', status: 'OK', note: `${((Date.now() - t0) / 1000).toFixed(0)} s, in ${cfg.work}` });
    return;
  }
  // 1. Differential checks on the tiny synthetic models (every supported format, layouts, LoRA, GELU modes).
  const f32 = tiny('f32-full', {});
  await differential('tiny f32 (601 layout)', f32, 'f32', { dump: true });
  await differential('tiny f32, fp16-table GELU', f32, 'f32', { gelu: 'fp16-table' });
  await differential('tiny f32 pruned (541 layout)', tiny('f32-pruned', { layout: 'pruned' }), 'f32');
  await differential('tiny f32 fused qkv', tiny('f32-fused', { fusedQkv: true }), 'f32');
  await differential('tiny f32 no attn_v', tiny('f32-nov', { omitV: true }), 'f32');
  const adDir = path.join(cfg.work, 'tiny-lora');
  if (!fs.existsSync(adDir)) {
    const tmp = `${adDir}.tmp-${process.pid}`;
    syn.writePeftAdapter(tmp, f32.config, { targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], rank: 8, alpha: 16, seed: 3 });
    fs.renameSync(tmp, adDir);
  }
  await differential('tiny f32 + LoRA (all 7 targets)', f32, 'f32', { adapterDir: adDir });
  for (const t of ['f16', 'bf16']) await differential(`tiny ${t}`, tiny(`${t}-full`, { weightType: t }), '16bit');
  for (const t of ['q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1']) await differential(`tiny ${t}`, tiny(`${t}-full`, { weightType: t }), 'quant');
  if (haveRef) {
    for (const t of ['q4_k_m', 'q5_k_m', 'q6_k']) await differential(`tiny ${t} (llama.cpp quantizer)`, quantized(f32, t, 2), 'quant');
  } else {
    out({ section: 'diff', name: 'tiny q4_k_m/q5_k_m/q6_k', status: 'SKIP', note: 'no .cache/reference/bin/llama_ref (scripts/setup-reference.sh)' });
  }

  // 2. Timings: tiny model, then the E2B-shape model (q4_k_m) at batch 1 and 64.
  const vocabTiny = f32.config.vocab.tokens.length;
  // (--cpu-only only exercises the code path: batch 4, one repeat.)
  const big = candDevice === 'cuda' ? 64 : 4, reps = candDevice === 'cuda' ? 5 : 1;
  await timing(`tiny f32, batch 1 (${candDevice})`, cand, candDevice, f32.file, adDir, f32.config.nLayer - 1, 1, 32, vocabTiny, reps);
  await timing(`tiny f32, batch ${big} (${candDevice})`, cand, candDevice, f32.file, adDir, f32.config.nLayer - 1, big, 32, vocabTiny, reps);
  if (cfg.e2b) {
    if (!haveRef) {
      out({ section: 'time', name: 'E2B shapes q4_k_m', status: 'SKIP', note: 'no llama_ref to quantize with' });
    } else {
      const t0 = Date.now();
      const { config, f16, q4, ad } = prepareE2b();
      out({ section: 'info', name: 'E2B-shape model ready', note: `${path.basename(q4.file)} in ${((Date.now() - t0) / 1000).toFixed(0)} s (cached afterwards)` });
      fs.writeFileSync(path.join(cfg.work, 'e2b-meta.json'), JSON.stringify({ f16, q4: q4.file, adapter: ad, layer: 17, promptLen: 32 }));
      const vocab = config.vocab.tokens.length;
      await timing(`E2B q4_k_m, batch 1 (${candDevice})`, cand, candDevice, q4.file, ad, 17, 1, 32, vocab, 5);
      if (candDevice === 'cuda') {
        await timing(`E2B q4_k_m, batch 64 (${candDevice})`, cand, candDevice, q4.file, ad, 17, 64, 32, vocab, 3);
        await timing('E2B q4_k_m, batch 1 (cpu, reference)', cpuBinding, 'cpu', q4.file, ad, 17, 1, 32, vocab, 1);
      }
    }
  }
})().catch((e) => { out({ section: 'diff', name: 'harness', status: 'FAIL', note: String(e && e.stack || e) }); process.exitCode = 1; });
JS

cat > "$work/hf_reference.py" <<'PY'
"""Python reference (transformers + peft + torch) for gpu-check.sh.

UNVERIFIED: written on a machine without torch/transformers and never run. It follows
shared/design/gemma4.md (HF names, config fields, the hidden_states off-by-one) but the
Gemma4TextConfig keyword names and the state-dict key names are the parts most likely to
need a fix. Every stage reports its own failure instead of stopping the check.

1. numerics: rebuilds the tiny f32 synthetic model from its GGUF (gguf-py reader), applies the
   same PEFT adapter with peft, runs it in fp32 on the GPU and compares every block output
   (hidden_states[i+1] == l_out-i for i < n_layer-1) with the CUDA backend's dump.
2. timing: the E2B-shape f16 GGUF in bf16 with the AR-shaped LoRA, blocks 0..17 (a hook stops
   the forward after block 17), batch 1 and batch 64 of 32-token prompts.
"""
import json, os, sys, time

work, root, mode = sys.argv[1], sys.argv[2], sys.argv[3]
results = os.path.join(work, "results.jsonl")


def out(**row):
    with open(results, "a") as f:
        f.write(json.dumps(row) + "\n")


sys.path.insert(0, os.path.join(root, ".cache", "reference", "llama.cpp", "gguf-py"))
try:
    import numpy as np
    import gguf  # noqa: F401
    from gguf import GGUFReader
    from gguf.quants import dequantize
except Exception as e:  # pragma: no cover
    out(section="python", name="imports (numpy, gguf-py)", status="FAIL", note=str(e))
    sys.exit(0)

if mode == "syntax":
    out(section="python", name="hf_reference.py", status="OK", note="syntax and gguf-py import checked; torch not run")
    sys.exit(0)

try:
    import torch
    import transformers
    from transformers import Gemma4ForCausalLM, Gemma4TextConfig
    import peft
except Exception as e:
    out(section="python", name="imports (torch, transformers, peft)", status="SKIP", note=str(e).split("\n")[0])
    sys.exit(0)


def field(r, key, default=None):
    f = r.fields.get(key)
    if f is None:
        return default
    v = f.contents()
    return v


def load_gguf(path):
    r = GGUFReader(path)
    arch = field(r, "general.architecture")
    a = f"{arch}."
    hp = {k[len(a):]: field(r, k) for k in r.fields if k.startswith(a)}
    tensors = {}
    for t in r.tensors:
        x = dequantize(t.data, t.tensor_type)
        shape = [int(n) for n in reversed(t.shape.tolist())]  # numpy order: [rows=out, cols=in]
        tensors[t.name] = np.asarray(x, dtype=np.float32).reshape(shape)
    return hp, tensors


def hf_config(hp, tensors):
    n_layer = int(hp["block_count"])
    ffn = hp["feed_forward_length"]
    ffn = [int(v) for v in ffn] if isinstance(ffn, (list, tuple)) else [int(ffn)] * n_layer
    swa = hp.get("attention.sliding_window_pattern")
    swa = [bool(v) for v in swa] if isinstance(swa, (list, tuple)) else [i % 5 != 4 for i in range(n_layer)]
    n_shared = int(hp.get("attention.shared_kv_layers", 0))
    base = ffn[0]
    double = any(f == 2 * base for f in ffn[n_layer - n_shared:]) if n_shared else False
    expect = [base if i < n_layer - n_shared or not double else 2 * base for i in range(n_layer)]
    if expect != ffn:
        raise ValueError(f"per-layer FFN widths {ffn} are not expressible in Gemma4TextConfig (intermediate_size + use_double_wide_mlp)")
    heads = hp["attention.head_count"]
    heads = int(heads[0]) if isinstance(heads, (list, tuple)) else int(heads)
    kv = hp["attention.head_count_kv"]
    kv = int(kv[0]) if isinstance(kv, (list, tuple)) else int(kv)
    hd_full = int(hp["attention.key_length"])
    hd_swa = int(hp["attention.key_length_swa"])
    n_rot_full = int(hp.get("rope.dimension_count", hd_full))
    vocab = tensors["token_embd.weight"].shape[0]
    ple = int(hp.get("embedding_length_per_layer_input", 0))
    return Gemma4TextConfig(
        vocab_size=vocab,
        vocab_size_per_layer_input=vocab,
        hidden_size=int(hp["embedding_length"]),
        hidden_size_per_layer_input=ple,
        num_hidden_layers=n_layer,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=hd_swa,
        global_head_dim=hd_full,
        intermediate_size=base,
        use_double_wide_mlp=double,
        num_kv_shared_layers=n_shared,
        layer_types=["sliding_attention" if s else "full_attention" for s in swa],
        sliding_window=int(hp["attention.sliding_window"]),
        rms_norm_eps=float(hp.get("attention.layer_norm_rms_epsilon", 1e-6)),
        final_logit_softcapping=float(hp.get("final_logit_softcapping", 0.0)) or None,
        max_position_embeddings=int(hp["context_length"]),
        attention_k_eq_v=False,
        hidden_activation="gelu_pytorch_tanh",
        tie_word_embeddings=True,
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": float(hp.get("rope.freq_base_swa", 1e4))},
            "full_attention": {"rope_type": "proportional", "rope_theta": float(hp.get("rope.freq_base", 1e6)),
                               "partial_rotary_factor": n_rot_full / hd_full if n_rot_full < hd_full else 0.25},
        },
    )


GG2HF = {
    "attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm",
    "post_attention_norm": "post_attention_layernorm", "ffn_norm": "pre_feedforward_layernorm",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj", "post_ffw_norm": "post_feedforward_layernorm",
    "inp_gate": "per_layer_input_gate", "proj": "per_layer_projection", "post_norm": "post_per_layer_input_norm",
}


def state_dict(tensors):
    sd = {}
    for name, x in tensors.items():
        t = torch.from_numpy(np.ascontiguousarray(x))
        if name == "token_embd.weight": sd["model.embed_tokens.weight"] = t
        elif name == "per_layer_token_embd.weight": sd["model.embed_tokens_per_layer.weight"] = t
        elif name == "per_layer_model_proj.weight": sd["model.per_layer_model_projection.weight"] = t
        elif name == "per_layer_proj_norm.weight": sd["model.per_layer_projection_norm.weight"] = t
        elif name == "output_norm.weight": sd["model.norm.weight"] = t
        elif name == "rope_freqs.weight": continue  # HF derives the proportional rope itself
        elif name.startswith("blk."):
            _, i, rest = name.split(".", 2)
            base = rest[: -len(".weight")] if rest.endswith(".weight") else rest
            if base == "layer_output_scale":
                sd[f"model.layers.{i}.layer_scalar"] = t.reshape(-1)
            elif base in GG2HF:
                sd[f"model.layers.{i}.{GG2HF[base]}.weight"] = t
            else:
                raise KeyError(f"no HF name for {name}")
    return sd


def build(path, dtype, adapter):
    hp, tensors = load_gguf(path)
    cfg = hf_config(hp, tensors)
    with torch.device("meta"):
        model = Gemma4ForCausalLM(cfg)
    sd = state_dict(tensors)
    missing, unexpected = model.load_state_dict(sd, strict=False, assign=True)
    missing = [k for k in missing if not k.endswith("lm_head.weight")]
    if missing or unexpected:
        raise KeyError(f"state dict mismatch: missing {missing[:6]} unexpected {unexpected[:6]}")
    model.tie_weights()
    model = model.to(device="cuda", dtype=dtype).eval()
    if adapter:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, adapter).eval()
    return model, hp


def numerics():
    meta = json.load(open(os.path.join(work, "dump-meta.json")))
    toks = json.load(open(os.path.join(work, "dump-tokens.json")))
    ours = np.fromfile(os.path.join(work, "dump-l_out.f32"), dtype=np.float32).reshape(meta["nLayer"], meta["tokens"], meta["nEmbd"])
    model, _ = build(meta["model"], torch.float32, meta.get("adapter"))
    with torch.no_grad():
        o = model(input_ids=torch.tensor([toks], device="cuda"), output_hidden_states=True, use_cache=False)
    hs = o.hidden_states
    worst = 0.0
    rows = []
    for i in range(meta["nLayer"] - 1):  # hidden_states[n_layer] is the final-normed output, not l_out-(n_layer-1)
        theirs = hs[i + 1][0].float().cpu().numpy()
        rel = float(np.sqrt(((ours[i] - theirs) ** 2).sum() / (theirs ** 2).sum()))
        rows.append(rel)
        worst = max(worst, rel)
    ok = worst <= 1e-3
    out(section="python", name="tiny f32: CUDA l_out vs transformers (fp32)", status="PASS" if ok else "FAIL", worstRel=worst,
        note=f"blocks 0..{meta['nLayer'] - 2}; tolerance 1e-3 (exact GELU, fp32 both); per block: " + " ".join(f"{r:.1e}" for r in rows),
        versions=f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")


class Stop(Exception):
    pass


def timing():
    meta = json.load(open(os.path.join(work, "e2b-meta.json")))
    model, hp = build(meta["f16"], torch.bfloat16, meta["adapter"])
    layer = meta["layer"]
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = base.model.layers

    def stop(_m, _a, _o):
        raise Stop()

    h = layers[layer].register_forward_hook(stop)
    vocab = int(base.config.vocab_size)
    g = torch.Generator().manual_seed(0)
    for batch, reps in ((1, 5), (64, 3)):
        ids = torch.randint(300, vocab, (batch, meta["promptLen"]), generator=g)
        ids[:, 0] = 2
        ids = ids.to("cuda")
        times = []
        with torch.no_grad():
            for r in range(reps + 1):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                try:
                    model(input_ids=ids, use_cache=False)
                except Stop:
                    pass
                torch.cuda.synchronize()
                if r > 0:
                    times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        med = times[len(times) // 2]
        out(section="time", name=f"E2B bf16, batch {batch} (transformers+peft)", status="OK", ms=med, perPromptMs=med / batch,
            backend=torch.cuda.get_device_name(0),
            note=f"{batch} x {meta['promptLen']} tokens, blocks 0..{layer} + LoRA (one padded-free batch), median of {len(times)}")
    h.remove()


for name, fn, needed in (("numerics", numerics, "dump-meta.json"), ("timing", timing, "e2b-meta.json")):
    if not os.path.exists(os.path.join(work, needed)):
        out(section="python", name=name, status="SKIP", note=f"{needed} missing (the node harness did not produce it)")
        continue
    try:
        fn()
    except Exception as e:
        out(section="python", name=name, status="FAIL", note=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    torch.cuda.empty_cache()
PY

cat > "$work/summary.js" <<'JS'
'use strict';
const fs = require('node:fs');
const [file, mode, elapsed] = process.argv.slice(2);
const rows = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
const fmt = (r) => {
  const m = [];
  if (r.worstRel !== undefined) m.push(`rel-RMS ${Number(r.worstRel).toExponential(2)}`);
  if (r.worstCos !== undefined) m.push(`cos ${Number(r.worstCos).toFixed(6)}`);
  if (r.ms !== undefined) m.push(`${r.ms.toFixed(1)} ms (${r.perPromptMs.toFixed(2)} ms/prompt)`);
  return m.join(', ');
};
const w = [8, 7, 52, 40];
const line = (c) => c.map((s, i) => String(s).padEnd(w[i])).join(' | ');
console.log(`\n=== gpu-check summary (mode ${mode}, ${elapsed} s) ===`);
console.log(line(['section', 'status', 'check', 'result']));
console.log(w.map((n) => '-'.repeat(n)).join('-+-'));
for (const r of rows) {
  console.log(line([r.section, r.status || '', r.name, fmt(r)]) + (r.tol ? `  [tol ${r.tol}]` : '') + (r.note ? `  ${r.note}` : '') + (r.backend ? `  {${r.backend}}` : ''));
}
const failed = rows.filter((r) => r.status === 'FAIL' && (r.section === 'diff' || r.section === 'build'));
console.log(`\n${failed.length === 0 ? 'OK' : 'FAILED'}: ${rows.filter((r) => r.status === 'PASS').length} passed, ${failed.length} failed (differential/build), ` +
  `${rows.filter((r) => r.status === 'SKIP').length} skipped`);
process.exitCode = failed.length === 0 ? 0 : 1;
JS

# ---------------------------------------------------------------- plan / prerequisites

have() { command -v "$1" >/dev/null 2>&1; }
gpu_arch=""
if have nvidia-smi; then
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .' || true)
  [[ "$cap" =~ ^[0-9]+$ ]] && gpu_arch="${cap}-real"
fi
echo "gpu-check: mode=$mode build=$build e2b=$e2b python=$python work=$work budget=${budget}s"
echo "gpu-check: node $(node --version 2>/dev/null || echo missing); nvcc $(have nvcc && nvcc --version | grep -o 'release [0-9.]*' || echo missing);" \
  "GPU arch ${gpu_arch:-none}; llama_ref $([[ -x .cache/reference/bin/llama_ref ]] && echo present || echo missing);" \
  "python3 $(have python3 && python3 --version 2>&1 | cut -d' ' -f2 || echo missing)"
[[ $prepare == 0 ]] || build=0
missing=()
[[ -d node_modules/cmake-js || $build == 0 ]] || missing+=("node_modules (npm ci)")
[[ $mode == cpu ]] || have nvcc || [[ $build == 0 ]] || missing+=("nvcc")
[[ $mode == cpu || $prepare == 1 ]] || [[ -n "$gpu_arch" ]] || missing+=("an NVIDIA GPU (nvidia-smi)")
if [[ $dry == 1 ]]; then
  echo "gpu-check: plan:"
  [[ $build == 1 ]] && echo "  1. build: CPU addon (build/), TypeScript (lib/, dist-tools/)$([[ $mode == cuda ]] && echo ", CUDA addon (variants/cuda/build/, archs ${gpu_arch:-full list})")"
  echo "  2. differential $([[ $mode == cuda ]] && echo 'CUDA' || echo 'CPU(stand-in)') vs CPU on tiny synthetic models: f32 (601/541/fused/no-v), fp16-table GELU, LoRA, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k_m, q5_k_m, q6_k; every block output, all tokens"
  echo "  3. timings: tiny model batch 1/64$([[ $e2b == 1 ]] && echo "; E2B-shape q4_k_m (generated f16 + llama_ref quantize, cached in $work) batch 1/64 to block 17 with LoRA")"
  [[ $python == 1 ]] && echo "  4. python: $([[ $mode == cuda ]] && echo 'transformers+peft reference (numerics on the tiny f32 model, E2B bf16 timings)' || echo 'syntax check of hf_reference.py')"
  echo "  5. one summary table"
  if [[ ${#missing[@]} -gt 0 ]]; then echo "gpu-check: missing for a real run: ${missing[*]}"; fi
  echo "gpu-check: dry run OK (helper scripts written to $work)"
  exit 0
fi
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "gpu-check: cannot run: missing ${missing[*]}" >&2
  exit 1
fi

rm -f "$results"
row() { node -e 'require("fs").appendFileSync(process.argv[1], JSON.stringify({section: process.argv[2], status: process.argv[3], name: process.argv[4], note: process.argv[5]}) + "\n")' "$results" "$@"; }

# ---------------------------------------------------------------- 1. build
if [[ $build == 1 ]]; then
  t0=$SECONDS
  if node node_modules/cmake-js/bin/cmake-js compile --out build >"$work/build-cpu.log" 2>&1 && node node_modules/typescript/bin/tsc -p tsconfig.json >>"$work/build-cpu.log" 2>&1 \
     && node node_modules/typescript/bin/tsc -p tsconfig.tools.json >>"$work/build-cpu.log" 2>&1; then
    row build OK "CPU addon + lib/ + dist-tools/" "$((SECONDS - t0)) s"
  else
    row build FAIL "CPU addon + lib/ + dist-tools/" "see $work/build-cpu.log"; tail -20 "$work/build-cpu.log" >&2
  fi
  if [[ $mode == cuda ]]; then
    t0=$SECONDS
    if NLA_CUDA_ARCHS="$gpu_arch" bash scripts/build-cuda.sh >"$work/build-cuda.log" 2>&1; then
      row build OK "CUDA addon ($gpu_arch)" "$((SECONDS - t0)) s; $(tail -2 "$work/build-cuda.log" | head -1)"
    else
      row build FAIL "CUDA addon ($gpu_arch)" "see $work/build-cuda.log"; tail -20 "$work/build-cuda.log" >&2
    fi
  fi
fi

# ---------------------------------------------------------------- 2-3. differential checks and timings
left=$((budget - (SECONDS - start) - 60))
[[ $left -gt 30 ]] || left=30
cfg=$(node -e 'console.log(JSON.stringify({root: process.argv[1], work: process.argv[2], results: process.argv[3], mode: process.argv[4],
  e2b: process.argv[5] === "1", budgetMs: Number(process.argv[6]) * 1000, threads: 0, prepare: process.argv[7] === "1"}))' \
  "$ROOT" "$work" "$results" "$mode" "$e2b" "$left" "$prepare")
if [[ $prepare == 1 ]]; then
  [[ -f dist-tools/tools/synthetic/index.js ]] || node node_modules/typescript/bin/tsc -p tsconfig.tools.json
  node "$work/harness.js" "$cfg"
  node "$work/summary.js" "$results" prepare "$((SECONDS - start))"
  exit $?
fi
timeout "$((left + 30))" node "$work/harness.js" "$cfg" || row diff FAIL "harness" "exit status $? (timeout or crash; see output above)"

# ---------------------------------------------------------------- 4. python reference
if [[ $python == 1 ]]; then
  if ! have python3; then
    row python SKIP "python reference" "no python3"
  elif [[ $mode == cpu ]]; then
    python3 -m py_compile "$work/hf_reference.py" && python3 "$work/hf_reference.py" "$work" "$ROOT" syntax || row python FAIL "hf_reference.py" "syntax/import check failed"
  else
    left=$((budget - (SECONDS - start)))
    if [[ $left -gt 20 ]]; then
      timeout "$left" python3 "$work/hf_reference.py" "$work" "$ROOT" run || row python FAIL "python reference" "exit status $? (timeout $left s?)"
    else
      row python SKIP "python reference" "time budget used up"
    fi
  fi
fi

# ---------------------------------------------------------------- 5. summary
node "$work/summary.js" "$results" "$mode" "$((SECONDS - start))"
