/**
 * Synthetic test models, generated once per machine into .cache/test-models (keyed by a hash of
 * the config, written to a temp name and renamed, so parallel jest workers never see half a file).
 * K-quant variants are made from the f32 model by llama.cpp's own quantizer.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  tinyGemma4Config,
  writeSyntheticGemma4,
  writePeftAdapter,
  writeLlamaCppLoraGguf,
  type SyntheticGemma4Config,
  type PeftAdapterOptions,
  type SyntheticAdapter,
} from '../../tools/synthetic';
import { quantizeRef, type RefQuantType } from './llamaRef';

export const CACHE = path.resolve(__dirname, '..', '..', '.cache', 'test-models');

function key(obj: unknown): string {
  const json = JSON.stringify(obj, (_k, v) => (v && typeof v === 'object' && 'tokens' in v && 'merges' in v ? `vocab:${(v as { tokens: string[] }).tokens.length}` : v));
  return crypto.createHash('sha256').update(json).digest('hex').slice(0, 12);
}

function atomically(target: string, make: (tmp: string) => void | Promise<void>): Promise<string> | string {
  if (fs.existsSync(target)) return target;
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const tmp = `${target}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const done = () => {
    if (!fs.existsSync(target)) fs.renameSync(tmp, target);
    else fs.rmSync(tmp, { recursive: true, force: true });
    return target;
  };
  const r = make(tmp);
  return r instanceof Promise ? r.then(done) : done();
}

export interface TestModel {
  path: string;
  config: SyntheticGemma4Config;
}

/** A tiny Gemma-4 GGUF (f32 unless overridden). */
export function tinyModel(name: string, overrides: Partial<SyntheticGemma4Config> = {}): TestModel {
  const config = tinyGemma4Config(overrides);
  const file = path.join(CACHE, `${name}-${key(config)}.gguf`);
  atomically(file, (tmp) => {
    writeSyntheticGemma4(tmp, config);
  });
  return { path: file, config };
}

/** A model quantized by llama.cpp (K-quants and friends) from an f32 tiny model. */
export async function quantizedModel(base: TestModel, type: RefQuantType): Promise<TestModel> {
  const file = base.path.replace(/\.gguf$/, `.${type}.gguf`);
  await atomically(file, (tmp) => quantizeRef(base.path, tmp, type, 2));
  return { path: file, config: base.config };
}

export interface TestAdapter {
  dir: string;
  loraGguf: string | null;
  adapter: SyntheticAdapter;
}

/** A PEFT adapter folder for a model, plus the same LoRA as a llama.cpp LoRA GGUF when expressible. */
export function peftAdapter(model: TestModel, name: string, opts: PeftAdapterOptions): TestAdapter {
  const dir = path.join(CACHE, `${name}-${key({ m: model.path, opts })}`);
  let adapter: SyntheticAdapter | undefined;
  atomically(dir, (tmp) => {
    adapter = writePeftAdapter(tmp, model.config, opts);
    try {
      writeLlamaCppLoraGguf(path.join(tmp, 'lora.gguf'), model.config, adapter);
    } catch {
      // not expressible for llama.cpp (per-module scales): no reference file
    }
  });
  // Regenerate in memory when it came from the cache (deterministic).
  if (!adapter) adapter = writePeftAdapter(fs.mkdtempSync(path.join(CACHE, 'regen-')), model.config, opts);
  const lora = path.join(dir, 'lora.gguf');
  return { dir, loraGguf: fs.existsSync(lora) ? lora : null, adapter };
}

/** Relative RMS difference ‖a − b‖ / ‖b‖. */
export function relRms(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

export function cosineOf(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i] * b[i];
    na += a[i] ** 2;
    nb += b[i] ** 2;
  }
  return d / Math.sqrt(na * nb);
}

/** A deterministic prompt of n token ids (BOS first) drawn from ordinary tokens of the synthetic vocab. */
export function testTokens(n: number, seed: number, vocab: number): Int32Array {
  const out = new Int32Array(n);
  out[0] = 2;
  let s = seed >>> 0;
  for (let i = 1; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = 300 + (s % (vocab - 300));
  }
  return out;
}
