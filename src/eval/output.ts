/**
 * The results file: JSON lines, one per row, keyed by the row's id, appended as rows finish. Re-running with the
 * same --out reads what is there and skips those rows (a line cut short by a crash is dropped and redone). A
 * sidecar `<out>.meta.json` records what the rows were computed from (data set hash, model fingerprint, mode and
 * columns); resuming with anything else is refused rather than mixing results.
 */
import * as fs from 'node:fs';
import { NlaError } from '../errors';
import type { RowResult } from './rows';

export interface ResultMeta {
  format: 'nla-ar-eval/1';
  dataset: { path: string; hash: string };
  /** Model fingerprint (src/eval/fingerprint.ts). */
  model: string;
  /** Everything else that changes a row's numbers. */
  config: Record<string, unknown>;
}

function sameMeta(a: ResultMeta, b: ResultMeta): string | null {
  if (a.dataset.hash !== b.dataset.hash) return 'another data set';
  if (a.model !== b.model) return 'other model files';
  if (JSON.stringify(a.config) !== JSON.stringify(b.config)) return `other settings (${JSON.stringify(a.config)})`;
  return null;
}

export class ResultFile {
  readonly path: string;
  /** Rows already in the file, by id. */
  readonly done = new Map<string, RowResult>();
  private fd: number;

  private constructor(file: string, fd: number) {
    this.path = file;
    this.fd = fd;
  }

  static open(file: string, meta: ResultMeta): ResultFile {
    const metaPath = `${file}.meta.json`;
    let existing = '';
    try {
      existing = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new NlaError('ERR_NLA_IO', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
    }
    if (existing.length > 0) {
      let old: ResultMeta;
      try {
        old = JSON.parse(fs.readFileSync(metaPath, 'utf8')) as ResultMeta;
      } catch {
        throw new NlaError('ERR_NLA_INVALID_ARG', `${file} exists but ${metaPath} does not: it was not written by nla-ar eval; choose another --out`);
      }
      const why = sameMeta(old, meta);
      if (why) throw new NlaError('ERR_NLA_INVALID_ARG', `${file} holds results computed from ${why}; choose another --out (or delete it) to start over`);
    }
    fs.writeFileSync(metaPath, JSON.stringify(meta, null, 2) + '\n');
    // keep whole lines only: a run killed mid-write leaves a partial last line
    const end = existing.lastIndexOf('\n') + 1;
    const rf = new ResultFile(file, -1);
    for (const line of existing.slice(0, end).split('\n')) {
      if (!line.trim()) continue;
      try {
        const r = JSON.parse(line) as RowResult;
        if (typeof r.id === 'string') rf.done.set(r.id, r);
      } catch {
        // a damaged line is redone
      }
    }
    if (end !== existing.length) fs.truncateSync(file, Buffer.byteLength(existing.slice(0, end)));
    rf.fd = fs.openSync(file, 'a');
    return rf;
  }

  /** Appends rows not yet in the file (a row that comes twice, e.g. from a retried shard, is written once). */
  append(rows: RowResult[]): RowResult[] {
    const fresh: RowResult[] = [];
    for (const r of rows)
      if (!this.done.has(r.id)) {
        this.done.set(r.id, r);
        fresh.push(r);
      }
    if (fresh.length === 0) return [];
    fs.writeSync(this.fd, fresh.map((r) => JSON.stringify(r)).join('\n') + '\n');
    return fresh;
  }

  close(): void {
    if (this.fd >= 0) {
      fs.fsyncSync(this.fd);
      fs.closeSync(this.fd);
      this.fd = -1;
    }
  }
}
