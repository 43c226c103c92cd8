/** Pieces shared by the CLI's commands. */
import { norm } from '../metrics';
import { UsageError } from './usage';

export { UsageError };

export function int(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} must be a non-negative integer, got '${v}'`);
  return n;
}

export function num(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${v}'`);
  return n;
}

export function need(v: string | undefined, name: string): string {
  if (!v) throw new UsageError(`--${name} is required`);
  return v;
}

/** `[done/total]` on stderr (stdout stays for results). */
export function progress(done: number, total: number, json: boolean): void {
  if (total > 1 && !json) process.stderr.write(`\r[${done}/${total}]${done === total ? '\n' : ''}`);
}

export function fmtVector(v: Float32Array, n = 6): string {
  return `[${Array.from(v.slice(0, n), (x) => x.toFixed(4)).join(', ')}${v.length > n ? ', …' : ''}] (‖v‖ = ${norm(v).toFixed(3)}, d = ${v.length})`;
}
