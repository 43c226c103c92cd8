/**
 * ActivationVector: the Float32Array the package returns for activations and reconstructions, with a compact
 * printout. A subclass rather than a wrapper object, so results stay what the API promises: `instanceof
 * Float32Array`, indexable, `.length` = d, accepted by every typed-array API (Array.from, set, the engine itself),
 * and a view on the same memory (no copy). Only three things change:
 *
 * - util.inspect (console.log, the Node REPL, tslab's cell output) prints `ActivationVector(1536) ‖v‖ = … [first
 *   values, …]` instead of a hundred numbers and "1436 more items";
 * - JSON.stringify gives a plain array of numbers (a bare Float32Array gives `{"0":…,"1":…}`), losslessly, since
 *   JSON is how results get saved; `summary()` is the compact form for logs;
 * - methods that build new arrays (map, slice, subarray, filter) return ActivationVectors too.
 */
import { inspect, type InspectOptionsStylized } from 'node:util';

export interface VectorSummary {
  /** Number of values. */
  d: number;
  /** Euclidean norm. */
  norm: number;
  /** The first values. */
  first: number[];
}

/** d, norm and the first `head` values of any vector. */
export function summarizeVector(v: ArrayLike<number>, head = 6): VectorSummary {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  const first: number[] = [];
  for (let i = 0; i < Math.min(head, v.length); i++) first.push(v[i]);
  return { d: v.length, norm: Math.sqrt(s), first };
}

function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? x.toExponential(3) : x.toFixed(4);
}

/** One line: `‖v‖ = 39.192, d = 1536, [0.0123, -0.4567, …]`. */
export function formatVector(v: ArrayLike<number>, head = 6): string {
  const s = summarizeVector(v, head);
  return `‖v‖ = ${fmt(s.norm)}, d = ${s.d}, [${s.first.map(fmt).join(', ')}${s.d > head ? ', …' : ''}]`;
}

export class ActivationVector extends Float32Array {
  /** The same memory as `a`, as an ActivationVector (no copy; `a` itself if it already is one). */
  static view(a: Float32Array): ActivationVector {
    return a instanceof ActivationVector ? a : new ActivationVector(a.buffer as ArrayBuffer, a.byteOffset, a.length) // (SharedArrayBuffer too);
  }

  /** Euclidean norm. */
  get norm(): number {
    return summarizeVector(this, 0).norm;
  }

  /** d, norm and the first `head` values (for logs and JSON summaries). */
  summary(head = 6): VectorSummary {
    return summarizeVector(this, head);
  }

  /** Every value, as a plain array (JSON.stringify would otherwise write an object keyed by index). */
  toJSON(): number[] {
    return Array.from(this);
  }

  [inspect.custom](_depth: number, options: InspectOptionsStylized): string {
    const s = summarizeVector(this, 6);
    const num = (x: number) => options.stylize(fmt(x), 'number');
    const more = s.d > s.first.length ? `, … ${s.d - s.first.length} more` : '';
    return `ActivationVector(${s.d}) ‖v‖ = ${num(s.norm)} [${s.first.map(num).join(', ')}${more}]`;
  }
}
