/**
 * Synthetic LoRA adapters for synthetic Gemma 4 models, in the two formats the product and its reference read:
 *  - a PEFT folder laid out like the published AR (adapter_config.json, adapter_model.safetensors, and
 *    optionally linear_head.pt), design/nla-protocol.md §5;
 *  - the same adapter as a llama.cpp LoRA GGUF (src/llama-adapter.cpp conventions, see below).
 *
 * LoRA math (PEFT): y = W x + s · B (A x), A [r, in], B [out, r], s = alpha/r (alpha/√r with rsLoRA), with
 * per-module r/alpha from rank_pattern/alpha_pattern. B is non-zero (a fresh PEFT adapter has B = 0, which
 * would test nothing) and scaled so the delta is about `bScale` of the base projection's output RMS.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NlaError } from '../../src/errors';
import { writeSafetensors } from '../formats/safetensors-writer';
import { LinearHead } from '../../src/head';
import { headToTorchBuffer } from '../formats/torch-writer';
import { bf16BitsToFp32, fp16BitsToFp32, fp32ToBf16Bits, fp32ToFp16Bits, GgmlType, quantize } from './ggml-quants';
import { gemma4LayerShapes, RandomStream, type SyntheticGemma4Config } from './gemma4';
import { GgufWriter, type GgufKv } from './gguf-writer';

export type LoraTarget = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj' | 'gate_proj' | 'up_proj' | 'down_proj';

export const LORA_TARGETS: readonly LoraTarget[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

/** GGUF base tensor of each PEFT module. */
const GGUF_TENSOR: Readonly<Record<LoraTarget, string>> = {
  q_proj: 'attn_q',
  k_proj: 'attn_k',
  v_proj: 'attn_v',
  o_proj: 'attn_output',
  gate_proj: 'ffn_gate',
  up_proj: 'ffn_up',
  down_proj: 'ffn_down',
};

export interface PeftAdapterOptions {
  /** LoRA rank (default 8). */
  rank?: number;
  /** lora_alpha (default 2·rank, i.e. scale 2 like the real AR's 128/64). */
  alpha?: number;
  targets: readonly LoraTarget[];
  /** Layers to adapt (default all). k/v are never adapted on KV-shared layers, like the real AR. */
  layers?: readonly number[];
  /** Storage dtype of A and B (default F32, like the published AR). */
  dtype?: 'F32' | 'F16' | 'BF16';
  seed: number;
  useRslora?: boolean;
  /** PEFT rank_pattern: module-name regex -> rank (first matching key wins, as in PEFT). */
  rankPattern?: Readonly<Record<string, number>>;
  /** PEFT alpha_pattern: module-name regex -> alpha. */
  alphaPattern?: Readonly<Record<string, number>>;
  /** Target RMS of the LoRA delta relative to a unit-RMS base projection output (default 0.2). */
  bScale?: number;
  /** Also write linear_head.pt (nEmbd x nEmbd + bias) from this seed. */
  includeHead?: { seed: number };
  /** base_model_name_or_path (default "google/gemma-4-E2B"). */
  baseModel?: string;
  /** lora_dropout recorded in the config (default 0.05; no effect at inference). */
  dropout?: number;
}

export interface LoraModule {
  readonly layer: number;
  readonly target: LoraTarget;
  /** Module path in the HF model, e.g. model.language_model.layers.3.self_attn.q_proj */
  readonly modulePath: string;
  /** GGUF base tensor, e.g. blk.3.attn_q.weight */
  readonly ggufTensor: string;
  readonly rank: number;
  readonly alpha: number;
  /** PEFT scaling: alpha/rank, or alpha/√rank with rsLoRA. */
  readonly scale: number;
  readonly inDim: number;
  readonly outDim: number;
  /** [rank, inDim] row-major, exactly the stored values (after dtype rounding). */
  readonly A: Float32Array;
  /** [outDim, rank] row-major, exactly the stored values. */
  readonly B: Float32Array;
}

export interface SyntheticAdapter {
  readonly dir: string;
  readonly configPath: string;
  readonly weightsPath: string;
  readonly headPath: string | null;
  readonly config: Readonly<Record<string, unknown>>;
  readonly modules: readonly LoraModule[];
  readonly head: { readonly weight: Float32Array; readonly bias: Float32Array; readonly dim: number } | null;
}

function bad(msg: string): NlaError {
  return new NlaError('ERR_NLA_INVALID_ARG', `writePeftAdapter: ${msg}`);
}

/** PEFT's pattern lookup: the first key `k` with re.match(rf"(.*\.)?({k})$", modulePath). */
function patternValue(pattern: Readonly<Record<string, number>> | undefined, modulePath: string): number | undefined {
  if (!pattern) return undefined;
  for (const [k, v] of Object.entries(pattern)) {
    let re: RegExp;
    try {
      re = new RegExp(`^(.*\\.)?(${k})$`);
    } catch (e) {
      throw bad(`invalid pattern key '${k}': ${(e as Error).message}`);
    }
    if (re.test(modulePath)) return v;
  }
  return undefined;
}

function targetRegex(targets: readonly LoraTarget[], layers: readonly number[] | null): string {
  const attn = targets.filter((t) => ['q_proj', 'k_proj', 'v_proj', 'o_proj'].includes(t)).map((t) => t.replace('_proj', ''));
  const mlp = targets.filter((t) => ['gate_proj', 'up_proj', 'down_proj'].includes(t)).map((t) => t.replace('_proj', ''));
  const layerPart = layers ? `(${layers.join('|')})` : '\\d+';
  let modPart: string;
  if (attn.length && mlp.length) modPart = `(self_attn|mlp).(${[...attn, ...mlp].join('|')})_proj`;
  else if (attn.length) modPart = `self_attn.(${attn.join('|')})_proj`;
  else modPart = `mlp.(${mlp.join('|')})_proj`;
  return `model.language_model.layers.${layerPart}.${modPart}`;
}

function roundToDtype(a: Float32Array, dtype: 'F32' | 'F16' | 'BF16'): Float32Array {
  if (dtype === 'F16') for (let i = 0; i < a.length; i++) a[i] = fp16BitsToFp32(fp32ToFp16Bits(a[i]!));
  else if (dtype === 'BF16') for (let i = 0; i < a.length; i++) a[i] = bf16BitsToFp32(fp32ToBf16Bits(a[i]!));
  return a;
}

function moduleDims(target: LoraTarget, L: { qDim: number; kvDim: number; ffn: number }, d: number): [number, number] {
  switch (target) {
    case 'q_proj':
      return [d, L.qDim];
    case 'k_proj':
    case 'v_proj':
      return [d, L.kvDim];
    case 'o_proj':
      return [L.qDim, d];
    case 'gate_proj':
    case 'up_proj':
      return [d, L.ffn];
    case 'down_proj':
      return [L.ffn, d];
  }
}

/** Write a PEFT LoRA folder for a synthetic (or real-shaped) Gemma 4 config. */
export function writePeftAdapter(dir: string, model: SyntheticGemma4Config, opts: PeftAdapterOptions): SyntheticAdapter {
  const layers = gemma4LayerShapes(model);
  const rank = opts.rank ?? 8;
  const alpha = opts.alpha ?? 2 * rank;
  const dtype = opts.dtype ?? 'F32';
  const bScale = opts.bScale ?? 0.2;
  if (!Number.isInteger(rank) || rank < 1) throw bad(`rank must be a positive integer, got ${rank}`);
  if (!(Number.isFinite(alpha) && alpha > 0)) throw bad(`alpha must be > 0, got ${alpha}`);
  if (!['F32', 'F16', 'BF16'].includes(dtype)) throw bad(`dtype must be F32, F16 or BF16, got ${dtype}`);
  if (!(bScale >= 0)) throw bad(`bScale must be >= 0, got ${bScale}`);
  if (!Array.isArray(opts.targets) || opts.targets.length === 0) throw bad('targets must list at least one module');
  for (const t of opts.targets) if (!LORA_TARGETS.includes(t)) throw bad(`unknown target '${String(t)}'`);
  const targets = LORA_TARGETS.filter((t) => opts.targets.includes(t));
  const layerSel = opts.layers ? [...new Set(opts.layers)].sort((a, b) => a - b) : null;
  for (const l of layerSel ?? []) {
    if (!Number.isInteger(l) || l < 0 || l >= model.nLayer) throw bad(`layer ${l} is outside 0..${model.nLayer - 1}`);
  }
  if (model.fusedQkv && targets.some((t) => t === 'q_proj' || t === 'k_proj' || t === 'v_proj')) {
    throw new NlaError('ERR_NLA_ADAPTER_MISMATCH', 'writePeftAdapter: the model uses a fused attn_qkv; q/k/v LoRA targets have no matching tensor');
  }
  if (model.omitV && targets.includes('v_proj')) {
    throw new NlaError('ERR_NLA_ADAPTER_MISMATCH', 'writePeftAdapter: the model has no attn_v (omitV); v_proj cannot be a target');
  }

  const modules: LoraModule[] = [];
  const tensors: Record<string, { dtype: 'F32' | 'F16' | 'BF16'; shape: number[]; data: Float32Array }> = {};
  for (const L of layers) {
    if (layerSel && !layerSel.includes(L.index)) continue;
    for (const target of targets) {
      if ((target === 'k_proj' || target === 'v_proj') && !L.ownsKv) continue; // KV-shared: no k/v, like the real AR
      const kind = target.endsWith('_proj') && ['gate_proj', 'up_proj', 'down_proj'].includes(target) ? 'mlp' : 'self_attn';
      const modulePath = `model.language_model.layers.${L.index}.${kind}.${target}`;
      const r = patternValue(opts.rankPattern, modulePath) ?? rank;
      const a = patternValue(opts.alphaPattern, modulePath) ?? alpha;
      if (!Number.isInteger(r) || r < 1) throw bad(`rank_pattern gives ${modulePath} an invalid rank ${r}`);
      if (!(Number.isFinite(a) && a > 0)) throw bad(`alpha_pattern gives ${modulePath} an invalid alpha ${a}`);
      const scale = opts.useRslora ? a / Math.sqrt(r) : a / r;
      const [inDim, outDim] = moduleDims(target, L, model.nEmbd);
      // A ~ N(0, 1/in): A x has unit-variance entries for unit-RMS x. B ~ N(0, σ) with s·√r·σ = bScale.
      const A = new RandomStream(opts.seed, `${modulePath}.lora_A`).fillNormal(new Float32Array(r * inDim), 1 / Math.sqrt(inDim));
      const B = new RandomStream(opts.seed, `${modulePath}.lora_B`).fillNormal(new Float32Array(outDim * r), bScale / (scale * Math.sqrt(r)));
      roundToDtype(A, dtype);
      roundToDtype(B, dtype);
      const prefix = `base_model.model.${modulePath}`;
      tensors[`${prefix}.lora_A.weight`] = { dtype, shape: [r, inDim], data: A };
      tensors[`${prefix}.lora_B.weight`] = { dtype, shape: [outDim, r], data: B };
      modules.push({
        layer: L.index,
        target,
        modulePath,
        ggufTensor: `blk.${L.index}.${GGUF_TENSOR[target]}.weight`,
        rank: r,
        alpha: a,
        scale,
        inDim,
        outDim,
        A,
        B,
      });
    }
  }
  if (modules.length === 0) throw bad('the selection adapts no module');

  const config: Record<string, unknown> = {
    alpha_pattern: { ...(opts.alphaPattern ?? {}) },
    auto_mapping: null,
    base_model_name_or_path: opts.baseModel ?? 'google/gemma-4-E2B',
    bias: 'none',
    corda_config: null,
    eva_config: null,
    exclude_modules: null,
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: alpha,
    lora_bias: false,
    lora_dropout: opts.dropout ?? 0.05,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    peft_version: '0.19.1',
    qalora_group_size: 16,
    r: rank,
    rank_pattern: { ...(opts.rankPattern ?? {}) },
    revision: null,
    target_modules: targetRegex(targets, layerSel),
    target_parameters: null,
    task_type: 'CAUSAL_LM',
    trainable_token_indices: null,
    use_dora: false,
    use_qalora: false,
    use_rslora: opts.useRslora ?? false,
  };

  let head: SyntheticAdapter['head'] = null;
  let headBuf: Buffer | null = null;
  if (opts.includeHead) {
    const d = model.nEmbd;
    const weight = new RandomStream(opts.includeHead.seed, 'linear_head.weight').fillNormal(new Float32Array(d * d), 1 / Math.sqrt(d));
    const bias = new RandomStream(opts.includeHead.seed, 'linear_head.bias').fillNormal(new Float32Array(d), 0.02);
    headBuf = headToTorchBuffer(LinearHead.fromArrays(weight, bias, { inDim: d, outDim: d }));
    head = { weight, bias, dim: d };
  }

  try {
    fs.mkdirSync(dir, { recursive: true });
    const configPath = path.join(dir, 'adapter_config.json');
    const weightsPath = path.join(dir, 'adapter_model.safetensors');
    fs.writeFileSync(configPath, JSON.stringify(config, null, 2) + '\n');
    fs.writeFileSync(weightsPath, writeSafetensors(tensors, { format: 'pt' }));
    let headPath: string | null = null;
    if (headBuf) {
      headPath = path.join(dir, 'linear_head.pt');
      fs.writeFileSync(headPath, headBuf);
    }
    return { dir, configPath, weightsPath, headPath, config, modules, head };
  } catch (e) {
    if (e instanceof NlaError) throw e;
    throw new NlaError('ERR_NLA_IO', `writePeftAdapter: cannot write ${dir}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * llama.cpp LoRA GGUF conventions (src/llama-adapter.cpp, src/llama-graph.cpp build_lora_mm,
 * convert_lora_to_gguf.py):
 *  - KV: general.architecture = the base arch, general.type = "adapter", adapter.type = "lora",
 *    adapter.lora.alpha (f32). No tokenizer or hparams.
 *  - Tensors `<base tensor>.lora_a` with ne = [in, r] and `<base tensor>.lora_b` with ne = [r, out], i.e. the PEFT
 *    A [r, in] and B [out, r] row-major bytes unchanged. Loader checks: base ne[0] == a.ne[0], base ne[1] == b.ne[1],
 *    a.ne[1] == b.ne[0].
 *  - Scale per tensor = alpha / r with r = lora_b.ne[0] (= adapter_scale·alpha/r; alpha 0 means scale 1), one alpha
 *    for the whole file. So PEFT scales s_m are expressible only if s_m·r_m is the same for every module; then
 *    alpha = that value (rsLoRA with one rank: alpha·√r). Otherwise this throws.
 */
export function writeLlamaCppLoraGguf(
  filePath: string,
  model: SyntheticGemma4Config,
  adapter: Pick<SyntheticAdapter, 'modules'>,
): { path: string; alpha: number; tensorCount: number; effectiveScales: readonly number[] } {
  const layers = gemma4LayerShapes(model);
  if (adapter.modules.length === 0) throw new NlaError('ERR_NLA_ADAPTER_INVALID', 'writeLlamaCppLoraGguf: the adapter has no modules');
  const ggufAlpha = Math.fround(adapter.modules[0]!.scale * adapter.modules[0]!.rank);
  for (const m of adapter.modules) {
    const need = Math.fround(m.scale * m.rank);
    if (Math.abs(need - ggufAlpha) > 1e-6 * Math.abs(ggufAlpha)) {
      throw new NlaError(
        'ERR_NLA_ADAPTER_INVALID',
        `writeLlamaCppLoraGguf: llama.cpp applies one alpha/r per file; ${m.modulePath} needs alpha ${need} (scale ${m.scale}, r ${m.rank}) but another module needs ${ggufAlpha}`,
      );
    }
    const L = layers[m.layer];
    if (!L) throw new NlaError('ERR_NLA_ADAPTER_MISMATCH', `writeLlamaCppLoraGguf: layer ${m.layer} is not in the model`);
    const [inDim, outDim] = moduleDims(m.target, L, model.nEmbd);
    if (inDim !== m.inDim || outDim !== m.outDim) {
      throw new NlaError('ERR_NLA_ADAPTER_MISMATCH', `writeLlamaCppLoraGguf: ${m.modulePath} is ${m.inDim}->${m.outDim}, the model has ${inDim}->${outDim}`);
    }
    if ((m.target === 'k_proj' || m.target === 'v_proj') && !L.ownsKv && model.layout === 'pruned') {
      throw new NlaError('ERR_NLA_ADAPTER_MISMATCH', `writeLlamaCppLoraGguf: ${m.ggufTensor} does not exist in a pruned model`);
    }
    if (model.fusedQkv && ['q_proj', 'k_proj', 'v_proj'].includes(m.target)) {
      throw new NlaError('ERR_NLA_ADAPTER_MISMATCH', `writeLlamaCppLoraGguf: the model has a fused attn_qkv; ${m.target} cannot be mapped`);
    }
    if (model.omitV && m.target === 'v_proj') {
      throw new NlaError('ERR_NLA_ADAPTER_MISMATCH', 'writeLlamaCppLoraGguf: the model has no attn_v');
    }
  }
  if (!(ggufAlpha > 0)) throw new NlaError('ERR_NLA_ADAPTER_INVALID', 'writeLlamaCppLoraGguf: alpha must be > 0 (llama.cpp reads alpha 0 as scale 1)');
  const kvs: GgufKv[] = [
    { key: 'general.architecture', value: { type: 'string', value: 'gemma4' } },
    { key: 'general.type', value: { type: 'string', value: 'adapter' } },
    { key: 'general.name', value: { type: 'string', value: 'synthetic-gemma4-lora' } },
    { key: 'adapter.type', value: { type: 'string', value: 'lora' } },
    { key: 'adapter.lora.alpha', value: { type: 'f32', value: ggufAlpha } },
  ];
  const decls = adapter.modules.flatMap((m) => [
    { name: `${m.ggufTensor}.lora_a`, ne: [m.inDim, m.rank], type: GgmlType.F32, data: m.A },
    { name: `${m.ggufTensor}.lora_b`, ne: [m.rank, m.outDim], type: GgmlType.F32, data: m.B },
  ]);
  const w = new GgufWriter(filePath, kvs, decls);
  try {
    for (const d of decls) w.writeTensorData(quantize(GgmlType.F32, d.data));
    w.finish();
  } catch (e) {
    w.abort();
    throw e;
  }
  return {
    path: filePath,
    alpha: ggufAlpha,
    tensorCount: decls.length,
    effectiveScales: adapter.modules.map((m) => Math.fround(ggufAlpha / m.rank)),
  };
}
