/**
 * Data sets for `nla-ar eval`: Parquet (read with hyparquet; NLA data sets keep activations in an
 * `activation_vector` list column) or JSON lines. Columns are chosen by name; a column named on the command line
 * must exist, a default one is used when present. Every row gets a stable id (the id column, else its index) and
 * its index in the file, which seeds the gibberish control so that results do not depend on how rows were split.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import { NlaError } from '../errors';

export interface DatasetRow {
  /** Position in the data set (0-based). */
  index: number;
  id: string;
  activation?: Float32Array;
  text?: string;
  explanation?: string;
  /** Why this row cannot be evaluated (a bad vector); it becomes an error row, not a failed run. */
  problem?: string;
}

export interface ColumnFlags {
  activation?: string;
  text?: string;
  explanation?: string;
  id?: string;
}

export interface Dataset {
  path: string;
  format: 'parquet' | 'jsonl';
  /** sha256 of the file's bytes. */
  hash: string;
  /** The columns used (undefined: not used / not present). */
  columns: ColumnFlags;
  rows: DatasetRow[];
}

const DEFAULTS: Required<ColumnFlags> = { activation: 'activation_vector', text: 'text', explanation: 'explanation', id: 'id' };
// NLA data sets name the vector column either way
const ACTIVATION_FALLBACKS = ['activation_vector', 'activation'];

export async function hashFile(file: string): Promise<string> {
  const h = crypto.createHash('sha256');
  await new Promise<void>((resolve, reject) => {
    fs.createReadStream(file)
      .on('data', (c) => h.update(c))
      .on('end', () => resolve())
      .on('error', (e) => reject(new NlaError('ERR_NLA_IO', `cannot read ${file}: ${e.message}`, { cause: e })));
  });
  return h.digest('hex');
}

function resolveColumns(available: Set<string>, flags: ColumnFlags, file: string): ColumnFlags {
  const pick = (key: keyof ColumnFlags, fallbacks: string[]): string | undefined => {
    const explicit = flags[key];
    if (explicit !== undefined) {
      if (!available.has(explicit))
        throw new NlaError('ERR_NLA_INVALID_ARG', `--${key}-column ${explicit}: ${file} has no such column (it has ${[...available].join(', ') || 'none'})`);
      return explicit;
    }
    return fallbacks.find((c) => available.has(c));
  };
  const cols: ColumnFlags = {
    activation: pick('activation', ACTIVATION_FALLBACKS),
    text: pick('text', [DEFAULTS.text]),
    explanation: pick('explanation', [DEFAULTS.explanation]),
    id: pick('id', [DEFAULTS.id]),
  };
  if (!cols.activation && !cols.text)
    throw new NlaError('ERR_NLA_INVALID_ARG', `${file} has neither an activation column (${ACTIVATION_FALLBACKS.join(' / ')}) nor a text column; name one with --activation-column or --text-column`);
  return cols;
}

function toVector(v: unknown): Float32Array | string {
  if (v === null || v === undefined) return 'the activation is missing';
  if (typeof v === 'string') {
    const b = Buffer.from(v, 'base64');
    if (b.length === 0 || b.length % 4 !== 0) return 'the activation string is not base64 float32';
    const out = new Float32Array(b.length / 4);
    for (let i = 0; i < out.length; i++) out[i] = b.readFloatLE(i * 4);
    return out;
  }
  if (Array.isArray(v) || ArrayBuffer.isView(v)) {
    const a = v as ArrayLike<unknown>;
    const out = new Float32Array(a.length);
    for (let i = 0; i < a.length; i++) {
      const x = a[i];
      if (typeof x !== 'number') return `activation[${i}] is not a number`;
      out[i] = x;
    }
    return out;
  }
  return `the activation is a ${typeof v}, not a list of numbers`;
}

function toRow(index: number, rec: Record<string, unknown>, cols: ColumnFlags): DatasetRow {
  const idv = cols.id ? rec[cols.id] : undefined;
  const row: DatasetRow = { index, id: idv === undefined || idv === null ? String(index) : String(idv) };
  if (cols.activation && rec[cols.activation] !== undefined && rec[cols.activation] !== null) {
    const v = toVector(rec[cols.activation]);
    if (typeof v === 'string') row.problem = v;
    else row.activation = v;
  }
  if (cols.text && typeof rec[cols.text] === 'string') row.text = rec[cols.text] as string;
  if (cols.explanation && typeof rec[cols.explanation] === 'string') row.explanation = rec[cols.explanation] as string;
  if (!row.activation && row.text === undefined && !row.problem) row.problem = 'the row has neither an activation nor a text';
  return row;
}

async function readParquet(file: string, flags: ColumnFlags): Promise<{ columns: ColumnFlags; rows: DatasetRow[] }> {
  const hp = await import('hyparquet');
  let buf, meta;
  try {
    buf = await hp.asyncBufferFromFile(file);
    meta = await hp.parquetMetadataAsync(buf);
  } catch (e) {
    throw new NlaError('ERR_NLA_INVALID_ARG', `${file} is not a readable Parquet file: ${(e as Error).message}`, { cause: e });
  }
  const available = new Set(hp.parquetSchema(meta).children.map((c) => c.element.name));
  const columns = resolveColumns(available, flags, file);
  const wanted = [...new Set(Object.values(columns).filter((c): c is string => c !== undefined))];
  const rows: DatasetRow[] = [];
  // one row group at a time, each turned into Float32Arrays at once: memory stays near the rows' own size
  let start = 0;
  for (const rg of meta.row_groups) {
    const end = start + Number(rg.num_rows);
    let recs: Record<string, unknown>[];
    try {
      recs = (await hp.parquetReadObjects({ file: buf, metadata: meta, columns: wanted, rowStart: start, rowEnd: end })) as Record<string, unknown>[];
    } catch (e) {
      throw new NlaError('ERR_NLA_INVALID_ARG', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
    }
    for (const r of recs) rows.push(toRow(rows.length, r, columns));
    start = end;
  }
  return { columns, rows };
}

async function readJsonl(file: string, flags: ColumnFlags): Promise<{ columns: ColumnFlags; rows: DatasetRow[] }> {
  // two streaming passes (column names, then rows), so that no whole-file string or object list is held
  const lines = async function* () {
    const rl = readline.createInterface({ input: fs.createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
    let k = 0;
    try {
      for await (const line of rl) {
        k++;
        if (!line.trim()) continue;
        let v: unknown;
        try {
          v = JSON.parse(line);
        } catch (e) {
          throw new NlaError('ERR_NLA_INVALID_ARG', `${file}:${k}: not JSON (${(e as Error).message})`);
        }
        if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new NlaError('ERR_NLA_INVALID_ARG', `${file}:${k}: each line must be a JSON object`);
        yield v as Record<string, unknown>;
      }
    } catch (e) {
      if (e instanceof NlaError) throw e;
      throw new NlaError('ERR_NLA_IO', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
    } finally {
      rl.close();
    }
  };
  const available = new Set<string>();
  for await (const rec of lines()) for (const key of Object.keys(rec)) available.add(key);
  const columns = resolveColumns(available, flags, file);
  const rows: DatasetRow[] = [];
  for await (const rec of lines()) rows.push(toRow(rows.length, rec, columns));
  return { columns, rows };
}

export async function readDataset(file: string, flags: ColumnFlags, limit?: number): Promise<Dataset> {
  if (!fs.existsSync(file)) throw new NlaError('ERR_NLA_IO', `data set not found: ${file}`);
  const format = /\.parquet$/i.test(file) ? 'parquet' : 'jsonl';
  const [hash, read] = await Promise.all([hashFile(file), format === 'parquet' ? readParquet(file, flags) : readJsonl(file, flags)]);
  const rows = limit !== undefined ? read.rows.slice(0, limit) : read.rows;
  const seen = new Set<string>();
  for (const r of rows) {
    if (seen.has(r.id)) throw new NlaError('ERR_NLA_INVALID_ARG', `${file}: the id ${JSON.stringify(r.id)} appears twice (ids key the results; choose another --id-column)`);
    seen.add(r.id);
  }
  return { path: file, format, hash, columns: read.columns, rows };
}
