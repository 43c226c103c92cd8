/**
 * Synthetic Gemma 4 models and adapters (tests, benchmarks and the embedded demo), plus the demo cache.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NlaError } from '../errors';
import { writeLlamaCppLoraGguf, writePeftAdapter } from './adapter';
import { tinyGemma4Config, writeSyntheticGemma4, type SyntheticGemma4Config } from './gemma4';

export * from './gguf-writer';
export * from './ggml-quants';
export * from './gemma4';
export * from './adapter';

/** Bump when anything that changes the demo files' bytes changes. */
export const DEMO_VERSION = 'demo-v1';

export interface DemoFiles {
  /** The demo folder, <cache>/demo-v1. */
  readonly dir: string;
  /** Tiny synthetic Gemma 4, q8_0 weights. */
  readonly model: string;
  /** PEFT folder like the published AR: adapter_config.json, adapter_model.safetensors, linear_head.pt. */
  readonly adapter: string;
  /** The same LoRA as a llama.cpp LoRA GGUF (for reference comparisons). */
  readonly loraGguf: string;
  /** The block whose output the demo AR reads (the tiny model's L). */
  readonly layer: number;
  /** The config the model was generated from. */
  readonly config: SyntheticGemma4Config;
}

/** `$NLA_AR_CACHE`, else `$XDG_CACHE_HOME/nla-ar`, else `~/.cache/nla-ar`. */
export function defaultCacheDir(): string {
  const env = process.env;
  if (env.NLA_AR_CACHE) return env.NLA_AR_CACHE;
  if (env.XDG_CACHE_HOME) return path.join(env.XDG_CACHE_HOME, 'nla-ar');
  return path.join(os.homedir(), '.cache', 'nla-ar');
}

/** The demo model's config (fixed: its bytes are part of DEMO_VERSION). */
export function demoModelConfig(): SyntheticGemma4Config {
  return tinyGemma4Config({ weightType: 'q8_0', seed: 20240601, name: 'nla-ar-demo-gemma4-tiny' });
}

const DEMO_LAYER = 6; // a KV-shared sliding layer with the double-wide MLP, like the real AR's L = 17

/**
 * Create the demo folder once (deterministic content; built in a temp folder and renamed into place, so a
 * concurrent or interrupted run never leaves a half-written folder behind) and return its paths.
 */
export function ensureDemoFiles(cacheDir: string = defaultCacheDir()): DemoFiles {
  const dir = path.join(cacheDir, DEMO_VERSION);
  const config = demoModelConfig();
  const files: DemoFiles = {
    dir,
    model: path.join(dir, 'model.gguf'),
    adapter: path.join(dir, 'adapter'),
    loraGguf: path.join(dir, 'lora.gguf'),
    layer: DEMO_LAYER,
    config,
  };
  const manifest = path.join(dir, 'manifest.json');
  if (fs.existsSync(manifest)) return files;

  let tmp: string;
  try {
    fs.mkdirSync(cacheDir, { recursive: true });
    tmp = fs.mkdtempSync(path.join(cacheDir, `.${DEMO_VERSION}.tmp-`));
  } catch (e) {
    throw new NlaError('ERR_NLA_IO', `cannot create the demo cache in ${cacheDir}: ${(e as Error).message}`, { cause: e });
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
    writeLlamaCppLoraGguf(path.join(tmp, 'lora.gguf'), config, adapter);
    fs.writeFileSync(
      path.join(tmp, 'manifest.json'),
      JSON.stringify({ version: DEMO_VERSION, layer: DEMO_LAYER, model: { tensors: model.tensorCount, bytes: model.fileSize }, adapterModules: adapter.modules.length }, null, 2) + '\n',
    );
    try {
      fs.renameSync(tmp, dir);
    } catch (e) {
      // another process finished first: keep theirs
      if (!fs.existsSync(manifest)) throw e;
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (e instanceof NlaError) throw e;
    throw new NlaError('ERR_NLA_IO', `cannot write the demo files to ${dir}: ${(e as Error).message}`, { cause: e });
  }
  return files;
}
