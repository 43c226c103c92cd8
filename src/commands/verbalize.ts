/**
 * `nla-ar verbalize`: activations in, explanations out (the AV), and `nla-ar round-trip --av --ar`: the whole NLA
 * loop on one base model — text → activation → explanation → reconstruction → cosine / direction-MSE.
 */
import * as fs from 'node:fs';
import { Autoencoder } from '../autoencoder';
import { NlaError } from '../errors';
import { Verbalizer, verbalizationStats, type VerbalizeOptions } from '../verbalizer';
import { int, need, num, progress, UsageError } from './util';

export interface VerbalizeArgs {
  model?: string;
  av?: string;
  ar?: string;
  text?: string;
  file?: string;
  activations?: string;
  layer?: string;
  'activation-layer'?: string;
  'max-tokens'?: string;
  temperature?: string;
  seed?: string;
  threads?: string;
  device?: string;
  json: boolean;
}

const BATCH = 16;

function generation(a: VerbalizeArgs): VerbalizeOptions {
  return {
    ...(a['max-tokens'] !== undefined ? { maxTokens: int(a['max-tokens'], 'max-tokens') } : {}),
    ...(a.temperature !== undefined ? { temperature: num(a.temperature, 'temperature') } : {}),
    ...(a.seed !== undefined ? { seed: int(a.seed, 'seed') } : {}),
  };
}

function device(a: VerbalizeArgs): 'auto' | 'cpu' | 'cuda' | undefined {
  if (a.device === undefined) return undefined;
  if (a.device !== 'auto' && a.device !== 'cpu' && a.device !== 'cuda') throw new UsageError(`--device must be auto, cpu or cuda`);
  return a.device;
}

/** Activations from a JSON-lines file: each line a number array or {"activation": [...]} (also "activation_vector"). */
export function readActivations(file: string): number[][] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l, i) => {
      let v: unknown;
      try {
        v = JSON.parse(l);
      } catch (e) {
        throw new NlaError('ERR_NLA_INVALID_ARG', `${file}:${i + 1}: not JSON: ${(e as Error).message}`);
      }
      const arr = Array.isArray(v) ? v : (v as { activation?: unknown; activation_vector?: unknown } | null)?.activation ?? (v as { activation_vector?: unknown } | null)?.activation_vector;
      if (!Array.isArray(arr) || !arr.every((x) => typeof x === 'number'))
        throw new NlaError('ERR_NLA_INVALID_ARG', `${file}:${i + 1}: expected an array of numbers or {"activation": [...]}`);
      return arr as number[];
    });
}

function texts(a: VerbalizeArgs): string[] {
  if (a.file)
    return fs
      .readFileSync(a.file, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => {
        const t = l.trim();
        if (t.startsWith('"') || t.startsWith('{')) {
          const v = JSON.parse(t) as unknown;
          if (typeof v === 'string') return v;
          if (v && typeof v === 'object' && typeof (v as { text?: unknown }).text === 'string') return (v as { text: string }).text;
        }
        return l;
      });
  return [need(a.text, 'text')];
}

export async function cmdVerbalize(a: VerbalizeArgs): Promise<void> {
  const model = need(a.model, 'model');
  const avDir = need(a.av, 'av');
  const opts = generation(a);
  if (!a.activations && !a.text && !a.file) throw new UsageError('give --text T (its activation is verbalized) or --activations F.jsonl');
  const av = await Verbalizer.load({ model, adapter: avDir, device: device(a), ...(a.threads ? { threads: int(a.threads, 'threads') } : {}) });
  try {
    // a text's activation is the base model's (no adapter), from the same mapping
    const sources = a.activations ? undefined : texts(a);
    const acts: (Float32Array | number[])[] = a.activations
      ? readActivations(a.activations)
      : await av.activation(sources!, { layer: int(a.layer ?? a['activation-layer'], 'layer') ?? 23 });
    for (const w of av.info.warnings) process.stderr.write(`nla-ar: note: ${w}\n`);
    const out: { index: number; text: string; explanation: string; finishReason: string; tokens: number }[] = [];
    for (let i = 0; i < acts.length; i += BATCH) {
      const batch = acts.slice(i, i + BATCH);
      const res = await av.verbalize(batch, opts);
      res.forEach((r, k) => {
        const index = i + k;
        out.push({ index, text: r.text, explanation: r.explanation, finishReason: r.finishReason, tokens: r.tokens.length });
        if (!a.json) console.log(`${index + 1}.${sources ? ` ${JSON.stringify(sources[index].slice(0, 60))}` : ''} [${r.finishReason}, ${r.tokens.length} tokens]\n   ${JSON.stringify(r.text)}`);
      });
      progress(Math.min(i + BATCH, acts.length), acts.length, a.json);
    }
    const stats = verbalizationStats(out.map((o) => o.text));
    if (a.json) console.log(JSON.stringify({ verbalizations: out, stats }));
    else if (out.length > 1) console.log(`empty ${(stats.emptyRate * 100).toFixed(0)}%, duplicates ${(stats.duplicateRate * 100).toFixed(0)}%, distinct 40-char prefixes ${(stats.uniquePrefixes[40] * 100).toFixed(0)}%`);
  } finally {
    await av.close();
  }
}

export async function cmdAutoencode(a: VerbalizeArgs): Promise<void> {
  const nla = await Autoencoder.load({
    model: need(a.model, 'model'),
    av: need(a.av, 'av'),
    ar: need(a.ar, 'ar'),
    device: device(a),
    ...(a.layer !== undefined ? { layer: int(a.layer, 'layer') } : {}),
    ...(a['activation-layer'] !== undefined ? { activationLayer: int(a['activation-layer'], 'activation-layer') } : {}),
    ...(a.threads ? { threads: int(a.threads, 'threads') } : {}),
  });
  try {
    for (const w of nla.verbalizer.info.warnings) process.stderr.write(`nla-ar: note: ${w}\n`);
    const items = texts(a);
    const out = [];
    for (let i = 0; i < items.length; i += BATCH) {
      const res = await nla.roundTrip(items.slice(i, i + BATCH), generation(a));
      for (const [k, r] of res.entries()) {
        out.push({ text: items[i + k], verbalization: r.text, explanation: r.explanation, finishReason: r.finishReason, cosine: r.cosine, mse: r.mse });
        if (!a.json) console.log(`${i + k + 1}. ${JSON.stringify(items[i + k].slice(0, 60))}\n   AV: ${JSON.stringify(r.text.slice(0, 200))}\n   AR: cos = ${r.cosine.toFixed(4)}, direction-MSE = ${r.mse.toFixed(4)}`);
      }
      progress(Math.min(i + BATCH, items.length), items.length, a.json);
    }
    const mean = out.reduce((s, r) => s + r.cosine, 0) / out.length;
    if (a.json) console.log(JSON.stringify({ results: out, meanCosine: mean, stats: verbalizationStats(out.map((o) => o.verbalization)) }));
    else if (out.length > 1) console.log(`mean cos = ${mean.toFixed(4)} over ${out.length}`);
  } finally {
    await nla.close();
  }
}
