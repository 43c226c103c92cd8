/**
 * Round-trip metrics, as the NLA literature defines them (shared/design/nla-protocol.md §2.5, §1.8):
 * cosine; direction-MSE = mean over elements of (a_n − b_n)² with both vectors rescaled to norm √d,
 * which equals 2(1 − cos); FVE = 1 − MSE / baseline, where the baseline is the same MSE between the
 * (rescaled) original and a predict-the-mean vector μ the caller supplies.
 */
import { NlaError } from './errors';

export type Vector = Float32Array | Float64Array | number[];

function check(name: string, v: Vector, d?: number): void {
  if (d !== undefined && v.length !== d)
    throw new NlaError('ERR_NLA_INVALID_ARG', `${name} has ${v.length} values, expected ${d}`);
  if (v.length === 0) throw new NlaError('ERR_NLA_INVALID_ARG', `${name} is empty`);
  for (let i = 0; i < v.length; i++)
    if (!Number.isFinite(v[i])) throw new NlaError('ERR_NLA_INVALID_ARG', `${name}[${i}] is not finite (${v[i]})`);
}

export function norm(v: Vector): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

/** Cosine similarity. Zero vectors give NaN-free 0. */
export function cosine(a: Vector, b: Vector): number {
  check('a', a);
  check('b', b, a.length);
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i] * b[i];
  const n = norm(a) * norm(b);
  return n === 0 ? 0 : dot / n;
}

/** `v` rescaled to norm √d (d = v.length), in float64. Direction only reaches the metrics. */
export function toSqrtDScale(v: Vector): Float64Array {
  check('v', v);
  const n = norm(v);
  const s = n === 0 ? 0 : Math.sqrt(v.length) / n;
  const out = new Float64Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i] * s;
  return out;
}

/** Mean over elements of (a_n − b_n)² at scale √d; equals 2(1 − cos) (0 identical, 2 orthogonal, 4 opposite). */
export function directionMse(a: Vector, b: Vector): number {
  check('a', a);
  check('b', b, a.length);
  const an = toSqrtDScale(a), bn = toSqrtDScale(b);
  let s = 0;
  for (let i = 0; i < an.length; i++) s += (an[i] - bn[i]) ** 2;
  return s / an.length;
}

/**
 * The predict-the-mean vector for FVE: the element-wise mean of the activations, each rescaled
 * to norm √d first (KIT's fve_nrm baseline). Pass it as `mean` to `roundTrip`.
 */
export function meanActivation(activations: Vector[]): Float64Array {
  if (activations.length === 0) throw new NlaError('ERR_NLA_INVALID_ARG', 'meanActivation needs at least one activation');
  const d = activations[0].length;
  const mu = new Float64Array(d);
  activations.forEach((a, k) => {
    check(`activations[${k}]`, a, d);
    const an = toSqrtDScale(a);
    for (let i = 0; i < d; i++) mu[i] += an[i] / activations.length;
  });
  return mu;
}

/** Per-element MSE between the rescaled original and the mean vector (used as-is, not rescaled). */
export function baselineMse(original: Vector, mean: Vector): number {
  check('mean', mean, original.length);
  const on = toSqrtDScale(original);
  let s = 0;
  for (let i = 0; i < on.length; i++) s += (on[i] - mean[i]) ** 2;
  return s / on.length;
}

/** Fraction of variance explained: 1 − MSE / baseline MSE. */
export function fve(reconstruction: Vector, original: Vector, mean: Vector): number {
  const b = baselineMse(original, mean);
  if (b === 0) throw new NlaError('ERR_NLA_INVALID_ARG', 'the mean equals the original activation: FVE is undefined');
  return 1 - directionMse(reconstruction, original) / b;
}
