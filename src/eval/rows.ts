/**
 * One batch of data-set rows through the engine: the same function runs in a local `eval` and in a queue worker,
 * so both give the same numbers for a row. A row that cannot be evaluated (a bad vector, an explanation over the
 * context) becomes an error row; the others in its batch are unaffected.
 */
import { gibberishLike } from '../controls';
import { cosine, directionMse } from '../metrics';
import type { Engine, VerbalizeParams, Verbalization } from '../server/engine';
import { describeError, type AnyErrorCode } from '../server/errors';
import { encodeVector } from '../server/vectors';
import type { DatasetRow } from './dataset';

export type EvalMode = 'ar' | 'controls' | 'round-trip';

export interface EvalConfig {
  mode: EvalMode;
  /** Base-model block whose activation a text row's original is. */
  activationLayer: number;
  /** Gibberish control seed (controls mode) and AV sampler seed (round-trip mode); row i uses seed + i. */
  seed: number;
  /** AV length limit and temperature (round-trip mode; the seed is `seed`). */
  sampling: VerbalizeParams;
}

/** One line of the results file. Vectors are base64 little-endian float32. */
export interface RowResult {
  id: string;
  index: number;
  cosine?: number;
  mse?: number;
  /** AR prompt tokens of the explanation. */
  tokens?: number;
  /** The AV's raw text (round-trip mode; it is what the AR was given). */
  explanation?: string;
  finishReason?: string;
  emptyCosine?: number;
  gibberishCosine?: number;
  /** cosine − emptyCosine */
  contentDelta?: number;
  /** cosine − gibberishCosine */
  gibberishDelta?: number;
  reconstruction?: string;
  /** The original, when it was computed from the row's text. */
  activation?: string;
  error?: { code: AnyErrorCode; message: string };
}

/** Serialisable form of a row for queue jobs. */
export interface WireRow {
  index: number;
  id: string;
  activation?: string;
  text?: string;
  explanation?: string;
  problem?: string;
}

export function toWire(r: DatasetRow): WireRow {
  const w: WireRow = { index: r.index, id: r.id };
  if (r.activation) w.activation = encodeVector(r.activation, 'base64') as string;
  if (r.text !== undefined) w.text = r.text;
  if (r.explanation !== undefined) w.explanation = r.explanation;
  if (r.problem !== undefined) w.problem = r.problem;
  return w;
}

export function fromWire(w: WireRow): DatasetRow {
  const r: DatasetRow = { index: w.index, id: w.id };
  if (w.activation !== undefined) {
    const b = Buffer.from(w.activation, 'base64');
    const v = new Float32Array(b.length / 4);
    for (let i = 0; i < v.length; i++) v[i] = b.readFloatLE(i * 4);
    r.activation = v;
  }
  if (w.text !== undefined) r.text = w.text;
  if (w.explanation !== undefined) r.explanation = w.explanation;
  if (w.problem !== undefined) r.problem = w.problem;
  return r;
}

const b64 = (v: Float32Array) => encodeVector(v, 'base64') as string;

/** Runs `fn` on all items at once; if that fails, on each alone, so only the failing items get an error. */
async function isolated<I, O>(items: I[], fn: (xs: I[]) => Promise<O[]>): Promise<(O | { failed: unknown })[]> {
  if (items.length === 0) return [];
  try {
    return await fn(items);
  } catch (e) {
    if (items.length === 1) return [{ failed: e }];
    const out: (O | { failed: unknown })[] = [];
    for (const it of items) {
      try {
        out.push((await fn([it]))[0]);
      } catch (e2) {
        out.push({ failed: e2 });
      }
    }
    return out;
  }
}

const isFailed = (x: unknown): x is { failed: unknown } => typeof x === 'object' && x !== null && 'failed' in x && !(x instanceof Float32Array);

function errorOf(e: unknown): { code: AnyErrorCode; message: string } {
  const d = describeError(e);
  return { code: d.code, message: d.message };
}

/**
 * The AV on rows; row i samples with cfg.seed + i whatever batch, shard, worker or resumed run it lands in (item j
 * of one engine call samples with seed + j, so each run of consecutive row indices is one call). Greedy decoding
 * ignores the seed and does not depend on the batch: one call.
 */
async function verbalizeRows(engine: Engine, xs: { a: Float32Array; index: number }[], cfg: EvalConfig): Promise<Verbalization[]> {
  const p = { ...cfg.sampling, seed: cfg.seed };
  if (!((p.temperature ?? 0) > 0)) return engine.verbalize(xs.map((x) => x.a), p);
  const out: Verbalization[] = [];
  for (let i = 0; i < xs.length; ) {
    let j = i + 1;
    while (j < xs.length && xs[j].index === xs[j - 1].index + 1) j++;
    out.push(...(await engine.verbalize(xs.slice(i, j).map((x) => x.a), { ...p, seed: cfg.seed + xs[i].index })));
    i = j;
  }
  return out;
}

export async function evalRows(engine: Engine, rows: DatasetRow[], cfg: EvalConfig): Promise<RowResult[]> {
  const d = engine.d;
  const results: RowResult[] = rows.map((r) => ({ id: r.id, index: r.index }));
  const fail = (k: number, code: AnyErrorCode, message: string) => (results[k].error ??= { code, message });

  // 1. originals: given, or the base model's activation of the text
  const originals: (Float32Array | undefined)[] = rows.map((r, k) => {
    if (r.problem) fail(k, 'ERR_NLA_INVALID_ARG', r.problem);
    else if (r.activation) {
      if (r.activation.length !== d) fail(k, 'ERR_NLA_INVALID_ARG', `the activation has ${r.activation.length} values, expected d_model = ${d}`);
      else if (!r.activation.every(Number.isFinite)) fail(k, 'ERR_NLA_INVALID_ARG', 'the activation has non-finite values');
      else return r.activation;
    }
    return undefined;
  });
  const needText = rows.map((r, k) => k).filter((k) => !results[k].error && !originals[k]);
  const computed = await isolated(needText, (ks) => engine.activations(ks.map((k) => rows[k].text!), cfg.activationLayer));
  needText.forEach((k, j) => {
    const c = computed[j];
    if (isFailed(c)) results[k].error = errorOf(c.failed);
    else {
      originals[k] = c;
      results[k].activation = b64(c);
    }
  });

  // 2. explanations: given, or the verbalizer's
  const explanations: (string | undefined)[] = rows.map(() => undefined);
  const live = () => rows.map((_, k) => k).filter((k) => !results[k].error);
  if (cfg.mode === 'round-trip') {
    const ks = live();
    const vs = await isolated(ks, (xs) => verbalizeRows(engine, xs.map((k) => ({ a: originals[k]!, index: rows[k].index })), cfg));
    ks.forEach((k, j) => {
      const v = vs[j];
      if (isFailed(v)) results[k].error = errorOf(v.failed);
      else {
        explanations[k] = v.text; // the released scripts pass the raw AV text to the AR
        results[k].explanation = v.text;
        results[k].finishReason = v.finishReason;
      }
    });
  } else {
    for (const k of live()) {
      if (typeof rows[k].explanation === 'string') explanations[k] = rows[k].explanation;
      else fail(k, 'ERR_NLA_INVALID_ARG', 'the row has no explanation (choose the column with --explanation-column)');
    }
  }

  // 3. reconstructions
  const ks = live();
  for (const k of ks) {
    try {
      results[k].tokens = engine.explanationTokens(explanations[k]!);
    } catch (e) {
      results[k].error = errorOf(e);
    }
  }
  const ok = ks.filter((k) => !results[k].error);
  const recs = await isolated(ok, (xs) => engine.reconstruct(xs.map((k) => explanations[k]!)));
  const gibKs: number[] = [];
  ok.forEach((k, j) => {
    const r = recs[j];
    if (isFailed(r)) {
      results[k].error = errorOf(r.failed);
      return;
    }
    const res = results[k];
    res.cosine = cosine(r, originals[k]!);
    res.mse = directionMse(r, originals[k]!);
    res.reconstruction = b64(r);
    gibKs.push(k);
  });

  // 4. controls: AR('') against each original, and a same-length gibberish explanation seeded by the row's index
  if (cfg.mode === 'controls' && gibKs.length > 0) {
    const empty = await engine.reconstructEmpty();
    const gib = await isolated(gibKs, (xs) => engine.reconstruct(xs.map((k) => gibberishLike(explanations[k]!, cfg.seed + rows[k].index))));
    gibKs.forEach((k, j) => {
      const res = results[k];
      const g = gib[j];
      if (isFailed(g)) {
        res.error = errorOf(g.failed);
        return;
      }
      res.emptyCosine = cosine(empty, originals[k]!);
      res.gibberishCosine = cosine(g, originals[k]!);
      res.contentDelta = res.cosine! - res.emptyCosine;
      res.gibberishDelta = res.cosine! - res.gibberishCosine;
    });
  }
  // an error row carries nothing else
  return results.map((r) => (r.error ? { id: r.id, index: r.index, error: r.error } : r));
}
