/**
 * A fingerprint of the model files an evaluation runs on, so that results are keyed by what computed them and a
 * worker with other files never takes a coordinator's shards. The adapter folder's files and the head are hashed
 * whole (tens of MB); a multi-GB GGUF is hashed by its size plus 64 spread 64 KiB samples and its first and last
 * MiB (where the header and tensor index live), which tells different files apart in practice at a fraction of
 * the cost of a full read. Two machines with byte-identical files get the same fingerprint.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NlaError } from '../errors';
import { DEFAULT_AR_LAYER } from '../options';

const FULL_HASH_LIMIT = 256 << 20;

function hashWhole(h: crypto.Hash, file: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
}

function hashSampled(h: crypto.Hash, file: string, size: number): void {
  const fd = fs.openSync(file, 'r');
  try {
    const read = (pos: number, len: number) => {
      const buf = Buffer.alloc(len);
      const n = fs.readSync(fd, buf, 0, len, pos);
      h.update(buf.subarray(0, n));
    };
    read(0, 1 << 20);
    for (let k = 0; k < 64; k++) read(Math.floor(((size - (64 << 10)) * k) / 63), 64 << 10);
    read(Math.max(0, size - (1 << 20)), 1 << 20);
  } finally {
    fs.closeSync(fd);
  }
}

function fileDigest(file: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    throw new NlaError('ERR_NLA_IO', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  const h = crypto.createHash('sha256');
  h.update(`${st.size}:`);
  if (st.size <= FULL_HASH_LIMIT) hashWhole(h, file);
  else hashSampled(h, file, st.size);
  return h.digest('hex');
}

function folderDigest(dir: string): Record<string, string> {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => /\.(json|safetensors|pt|bin)$/.test(n)).sort();
  } catch (e) {
    throw new NlaError('ERR_NLA_IO', `cannot read the folder ${dir}: ${(e as Error).message}`, { cause: e });
  }
  return Object.fromEntries(names.map((n) => [n, fileDigest(path.join(dir, n))]));
}

export interface FingerprintInput {
  model: string;
  ar: string;
  av?: string;
  /** AR block (undefined: the default). */
  layer?: number;
}

/** Hex sha256 over the files' digests and the AR block. */
export function modelFingerprint(o: FingerprintInput): string {
  const parts = { model: fileDigest(o.model), ar: folderDigest(o.ar), av: o.av ? folderDigest(o.av) : null, layer: o.layer ?? DEFAULT_AR_LAYER };
  return crypto.createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}
