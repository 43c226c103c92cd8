/**
 * The demo files (a tiny synthetic q8_0 Gemma 4, a PEFT adapter shaped like the released AR and its
 * linear_head.pt), made by the synthetic generator. `npm run build:demo` writes them to <package>/demo, which
 * the package ships and `nla-ar demo` reads (src/demo.ts); the tests make their own copy.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NlaError } from '../src/errors';
import { DEMO_MANIFEST, type DemoManifest } from '../src/demo';
import { writeLlamaCppLoraGguf, writePeftAdapter } from './synthetic/adapter';
import { tinyGemma4Config, writeSyntheticGemma4, type SyntheticGemma4Config } from './synthetic/gemma4';

/** Bump when anything that changes the demo files' bytes changes. */
export const DEMO_VERSION = 'demo-v3';

export interface DemoFiles {
  /** The demo folder. */
  readonly dir: string;
  /** Tiny synthetic Gemma 4, q8_0 weights. */
  readonly model: string;
  /** PEFT folder like the published AR: adapter_config.json, adapter_model.safetensors, linear_head.pt. */
  readonly adapter: string;
  /** PEFT folder like the published AV (attention and MLP deltas) with an nla_meta.yaml naming the marker ids. */
  readonly av: string;
  /** The same LoRA as a llama.cpp LoRA GGUF (for reference comparisons), when written. */
  readonly loraGguf: string | null;
  /** The block whose output the demo AR reads (the tiny model's L). */
  readonly layer: number;
  /** The config the model was generated from. */
  readonly config: SyntheticGemma4Config;
}

/**
 * The demo model's config (fixed: its bytes are part of DEMO_VERSION): E2B's structure (35 blocks, full attention
 * every 5th, the last 20 KV-shared with the double-wide MLP, per-layer inputs, partial RoPE on full layers) at
 * tiny widths, so the defaults of the real pair (AR block 17, activation block 23) work on it and the package
 * stays small.
 */
export function demoModelConfig(): SyntheticGemma4Config {
  const nLayer = 35;
  const sharedKvLayers = 20;
  return tinyGemma4Config({
    nLayer,
    nEmbd: 64,
    nHead: 2,
    nHeadKv: 1,
    headDimSwa: 32,
    headDimFull: 64,
    ffn: Array.from({ length: nLayer }, (_, i) => (i < nLayer - sharedKvLayers ? 128 : 256)),
    sliding: Array.from({ length: nLayer }, (_, i) => i % 5 !== 4),
    slidingWindow: 32,
    sharedKvLayers,
    pleDim: 32,
    contextLength: 2048,
    weightType: 'q8_0',
    seed: 20240601,
    name: 'nla-ar-demo-gemma4-tiny',
  });
}

/** The AR's block and the activation's block, as in the released pair. */
const DEMO_LAYER = 17;
const DEMO_ACTIVATION_LAYER = 23;

export interface DemoOptions {
  /** Also write the LoRA as a llama.cpp LoRA GGUF. */
  loraGguf?: boolean;
  /** Another model (the tests' smaller 8-block demo); default demoModelConfig(). */
  config?: SyntheticGemma4Config;
  layer?: number;
  activationLayer?: number;
}

/**
 * The AV's sidecar in the reference schema (nla-protocol.md §2.4), with the marker ids of the synthetic vocabulary:
 * ㊗ sits between `>` (of `<concept>`) and `<` (of `</concept>`) there, where the Gemma-4 vocabulary has `>` and `</`.
 */
function avSidecar(config: SyntheticGemma4Config): string {
  const id = (s: string) => {
    const i = config.vocab.tokens.indexOf(s);
    if (i < 0) throw new NlaError('ERR_NLA_INTERNAL', `the synthetic vocabulary has no token ${JSON.stringify(s)}`);
    return i;
  };
  return [
    '# nla-ar demo AV (synthetic weights): the injection marker in this model\'s vocabulary',
    'kind: nla_model',
    'role: av',
    `d_model: ${config.nEmbd}`,
    'extraction:',
    '  layer: 23',
    '  injection_scale: sqrt_d_model',
    '  mse_scale: sqrt_d_model',
    'tokens:',
    '  injection_char: "\u3297"',
    `  injection_token_id: ${id('\u3297')}`,
    `  injection_left_neighbor_id: ${id('>')}`,
    `  injection_right_neighbor_id: ${id('<')}`,
    '',
  ].join('\n');
}

function readManifest(file: string): DemoManifest | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as DemoManifest;
  } catch {
    return null;
  }
}

/**
 * Writes the demo folder `dir` unless it already holds this DEMO_VERSION (deterministic content; built in a temp
 * folder and renamed into place, so a concurrent or interrupted run never leaves a half-written folder behind).
 * `loraGguf` also writes the LoRA as a llama.cpp LoRA GGUF (the tests compare against llama.cpp with it).
 */
export function writeDemoFiles(dir: string, options: DemoOptions = {}): DemoFiles {
  const config = options.config ?? demoModelConfig();
  const layer = options.layer ?? DEMO_LAYER;
  const activationLayer = options.activationLayer ?? DEMO_ACTIVATION_LAYER;
  const files: DemoFiles = {
    dir,
    model: path.join(dir, 'model.gguf'),
    adapter: path.join(dir, 'adapter'),
    av: path.join(dir, 'av'),
    loraGguf: options.loraGguf ? path.join(dir, 'lora.gguf') : null,
    layer,
    config,
  };
  const manifest = path.join(dir, DEMO_MANIFEST);
  const version = options.config ? `${DEMO_VERSION}-custom-${config.seed}-${config.nLayer}` : DEMO_VERSION;
  if (readManifest(manifest)?.version === version && (!files.loraGguf || fs.existsSync(files.loraGguf))) return files;

  const parent = path.dirname(dir);
  let tmp: string;
  try {
    fs.mkdirSync(parent, { recursive: true });
    tmp = fs.mkdtempSync(path.join(parent, `.${path.basename(dir)}.tmp-`));
  } catch (e) {
    throw new NlaError('ERR_NLA_IO', `cannot create the demo folder ${dir}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const model = writeSyntheticGemma4(path.join(tmp, 'model.gguf'), config);
    const adapter = writePeftAdapter(path.join(tmp, 'adapter'), config, {
      rank: 8,
      alpha: 16,
      targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
      dtype: 'F32',
      seed: 7,
      includeHead: { seed: 11 },
    });
    if (files.loraGguf) writeLlamaCppLoraGguf(path.join(tmp, 'lora.gguf'), config, adapter);
    writePeftAdapter(path.join(tmp, 'av'), config, {
      rank: 8,
      alpha: 16,
      targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
      dtype: 'F32',
      seed: 13,
    });
    fs.writeFileSync(path.join(tmp, 'av', 'nla_meta.yaml'), avSidecar(config));
    const m: DemoManifest = {
      version,
      layer,
      activationLayer,
      nLayer: config.nLayer,
      model: { tensors: model.tensorCount, bytes: model.fileSize },
      adapterModules: adapter.modules.length,
    };
    fs.writeFileSync(path.join(tmp, DEMO_MANIFEST), JSON.stringify(m, null, 2) + '\n');
    if (readManifest(manifest)?.version !== version) fs.rmSync(dir, { recursive: true, force: true }); // an older version
    try {
      fs.renameSync(tmp, dir);
    } catch (e) {
      // another process finished first: keep theirs
      if (readManifest(manifest)?.version !== version) throw e;
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (e instanceof NlaError) throw e;
    throw new NlaError('ERR_NLA_IO', `cannot write the demo files to ${dir}: ${(e as Error).message}`, { cause: e });
  }
  return files;
}
