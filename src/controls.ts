/**
 * The controls NLA evaluations need (shared/design/nla-protocol.md §4.3), one call away:
 * content vs. empty / gibberish baselines, and cross-row identity of reconstructions.
 */
import { NlaError } from './errors';
import { cosine, type Vector } from './metrics';

export interface CrossRowIdentity {
  /** cos(reconstruction i, original j), n × n. */
  cosines: number[][];
  /** Fraction of rows whose own original has the highest cosine (chance = 1/n). */
  top1: number;
  chance: number;
  /** Mean of the diagonal, of the off-diagonal entries, and their difference. */
  diagonalMean: number;
  offDiagonalMean: number;
  margin: number;
  /** Mean 1-based rank of the own original among the n originals (1 = best, (n+1)/2 = chance). */
  meanRank: number;
}

/** Does each reconstruction pick out its own original among all of them? */
export function crossRowIdentity(reconstructions: Vector[], originals: Vector[]): CrossRowIdentity {
  const n = reconstructions.length;
  if (n < 2) throw new NlaError('ERR_NLA_INVALID_ARG', 'crossRowIdentity needs at least two rows');
  if (originals.length !== n)
    throw new NlaError('ERR_NLA_INVALID_ARG', `crossRowIdentity: ${n} reconstructions but ${originals.length} originals`);
  const cosines = reconstructions.map((r) => originals.map((o) => cosine(r, o)));
  let hits = 0, diag = 0, off = 0, rankSum = 0;
  for (let i = 0; i < n; i++) {
    const own = cosines[i][i];
    diag += own;
    let better = 0;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      off += cosines[i][j];
      if (cosines[i][j] > own) better++;
    }
    if (better === 0) hits++;
    rankSum += better + 1;
  }
  const diagonalMean = diag / n, offDiagonalMean = off / (n * (n - 1));
  return { cosines, top1: hits / n, chance: 1 / n, diagonalMean, offDiagonalMean, margin: diagonalMean - offDiagonalMean, meanRank: rankSum / n };
}

/** A deterministic gibberish string with the letter/space statistics of `like` (same length). */
export function gibberishLike(like: string, seed = 1): string {
  let s = (seed >>> 0) || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  let out = '';
  for (const ch of like) out += /\s/.test(ch) ? ch : letters[next() % letters.length];
  return out;
}

export interface ControlResult {
  cosine: number;
  /** cos(original, AR(empty explanation)). */
  emptyCosine: number;
  /** cos(original, AR(gibberish of the same length)). */
  gibberishCosine: number;
  /** cosine − emptyCosine: what the explanation's content adds over the structural baseline. */
  contentDelta: number;
}

export interface ControlsSummary {
  items: ControlResult[];
  mean: { cosine: number; emptyCosine: number; gibberishCosine: number; contentDelta: number };
  /** Sample standard deviation of contentDelta (0 for one item). */
  contentDeltaSd: number;
}

export function summarizeControls(items: ControlResult[]): ControlsSummary {
  const n = items.length;
  const avg = (f: (r: ControlResult) => number) => items.reduce((s, r) => s + f(r), 0) / n;
  const mean = { cosine: avg((r) => r.cosine), emptyCosine: avg((r) => r.emptyCosine), gibberishCosine: avg((r) => r.gibberishCosine), contentDelta: avg((r) => r.contentDelta) };
  const sd = n > 1 ? Math.sqrt(items.reduce((s, r) => s + (r.contentDelta - mean.contentDelta) ** 2, 0) / (n - 1)) : 0;
  return { items, mean, contentDeltaSd: sd };
}
