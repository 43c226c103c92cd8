/**
 * The end-of-run summary, computed from the results file's rows (so a resumed run summarises every row, not just
 * the last session's) and the originals: mean cosine and direction-MSE ± SEM, FVE against the data set's own
 * predict-the-mean vector, and in controls mode the empty / gibberish baselines with their deltas and cross-row
 * identity. Rows are taken in data-set order, so the summary does not depend on the order they finished in.
 */
import { crossRowIdentity } from '../controls';
import { baselineMse, meanActivation } from '../metrics';
import type { RowResult } from './rows';

export interface MeanSem {
  mean: number;
  /** Standard error of the mean (sample SD / √n; 0 for one row). */
  sem: number;
  n: number;
}

export interface EvalSummary {
  rows: number;
  ok: number;
  errors: number;
  errorCodes: Record<string, number>;
  cosine?: MeanSem;
  mse?: MeanSem;
  /** 1 − mean(direction-MSE) / mean(baseline MSE), the baseline being the data set's mean activation. */
  fve?: number;
  baselineMse?: number;
  controls?: {
    emptyCosine: MeanSem;
    gibberishCosine: MeanSem;
    contentDelta: MeanSem;
    gibberishDelta: MeanSem;
    identity?: { n: number; top1: number; chance: number; margin: number; meanRank: number };
  };
}

function meanSem(xs: number[]): MeanSem | undefined {
  const n = xs.length;
  if (n === 0) return undefined;
  const mean = xs.reduce((s, x) => s + x, 0) / n;
  const sd = n > 1 ? Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, sem: sd / Math.sqrt(n), n };
}

function fromB64(s: string): Float32Array {
  const b = Buffer.from(s, 'base64');
  const v = new Float32Array(b.length / 4);
  for (let i = 0; i < v.length; i++) v[i] = b.readFloatLE(i * 4);
  return v;
}

/**
 * @param originalOf the original activation of a row (from the data set, or the row's own `activation`)
 * @param identityRows cross-row identity uses at most this many rows (the first in data-set order): it is n² cosines
 */
export function summarize(results: Iterable<RowResult>, originalOf: (r: RowResult) => Float32Array | undefined, identityRows = 500): EvalSummary {
  const all = [...results].sort((a, b) => a.index - b.index);
  const ok = all.filter((r) => !r.error && r.cosine !== undefined);
  const errorCodes: Record<string, number> = {};
  for (const r of all) if (r.error) errorCodes[r.error.code] = (errorCodes[r.error.code] ?? 0) + 1;
  const s: EvalSummary = { rows: all.length, ok: ok.length, errors: all.length - ok.length, errorCodes };
  if (ok.length === 0) return s;
  s.cosine = meanSem(ok.map((r) => r.cosine!));
  s.mse = meanSem(ok.map((r) => r.mse!));
  const originals = ok.map((r) => originalOf(r) ?? (r.activation ? fromB64(r.activation) : undefined));
  if (ok.length >= 2 && originals.every((o) => o !== undefined)) {
    const mu = meanActivation(originals as Float32Array[]);
    const base = originals.reduce((acc, o) => acc + baselineMse(o!, mu), 0) / ok.length;
    s.baselineMse = base;
    if (base > 0) s.fve = 1 - s.mse!.mean / base;
  }
  const ctl = ok.filter((r) => r.emptyCosine !== undefined);
  if (ctl.length > 0) {
    s.controls = {
      emptyCosine: meanSem(ctl.map((r) => r.emptyCosine!))!,
      gibberishCosine: meanSem(ctl.map((r) => r.gibberishCosine!))!,
      contentDelta: meanSem(ctl.map((r) => r.contentDelta!))!,
      gibberishDelta: meanSem(ctl.map((r) => r.gibberishDelta!))!,
    };
    const idRows = ctl.slice(0, identityRows).filter((r) => r.reconstruction);
    if (idRows.length >= 2) {
      const recs = idRows.map((r) => fromB64(r.reconstruction!));
      const origs = idRows.map((r) => originalOf(r) ?? fromB64(r.activation!));
      const id = crossRowIdentity(recs, origs);
      s.controls.identity = { n: idRows.length, top1: id.top1, chance: id.chance, margin: id.margin, meanRank: id.meanRank };
    }
  }
  return s;
}

const f = (x: number, d = 4) => x.toFixed(d);
const ms = (m: MeanSem) => `${f(m.mean)} ± ${f(m.sem)}`;

export function formatSummary(s: EvalSummary): string {
  const lines = [`rows ${s.rows}: ${s.ok} evaluated, ${s.errors} errors${s.errors ? ` (${Object.entries(s.errorCodes).map(([c, n]) => `${c} ×${n}`).join(', ')})` : ''}`];
  if (s.cosine) lines.push(`cosine        ${ms(s.cosine)} (mean ± SEM)`);
  if (s.mse) lines.push(`direction-MSE ${ms(s.mse)}`);
  if (s.fve !== undefined) lines.push(`FVE           ${f(s.fve)} (against the data set's mean activation; baseline MSE ${f(s.baselineMse!)})`);
  if (s.controls) {
    const c = s.controls;
    lines.push(`controls      empty cos ${ms(c.emptyCosine)}, gibberish cos ${ms(c.gibberishCosine)}`);
    lines.push(`              content delta (cos − empty) ${ms(c.contentDelta)}, cos − gibberish ${ms(c.gibberishDelta)}`);
    if (c.identity)
      lines.push(`              cross-row identity over ${c.identity.n} rows: top-1 ${f(c.identity.top1, 3)} (chance ${f(c.identity.chance, 3)}), margin ${f(c.identity.margin)}, mean rank ${f(c.identity.meanRank, 1)}`);
  }
  return lines.join('\n');
}
