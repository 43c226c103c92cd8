/**
 * `nla-ar eval` as a real process on data sets written here: JSON lines (vectors as number arrays and as base64)
 * and Parquet written by a Parquet writer library (hyparquet-writer) with a list<float> `activation_vector` column.
 * Every row's numbers must equal the in-process API's exactly (the same float32 vectors through the same metric
 * code), the summary must equal what the rows give, a killed run must resume without repeating or losing a row,
 * and the round-trip mode (the verbalizer, then the AR) must equal the in-process Autoencoder row for row.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Autoencoder, Reconstructor, cosine, directionMse, meanActivation, baselineMse, crossRowIdentity, gibberishLike } from '../src';
import { Progress } from '../src/eval/progress';
import { ensureLib, ROOT } from './helpers/build';
import { demoFiles } from './helpers/demo';
import { spawnCli } from './helpers/serve';

const files = demoFiles();
const actLayer = files.config.nLayer - 1;
const model = ['--model', files.model, '--ar', files.adapter, '--layer', String(files.layer), '--activation-layer', String(actLayer), '--device', 'cpu', '--threads', '1'];

let ar: Reconstructor;
let tmp: string;
let jsonl: string;

interface Src {
  id: string;
  text?: string;
  explanation?: string;
  alt?: string;
  activation_vector?: number[] | string;
}
const src: Src[] = [];
const acts = new Map<string, Float32Array>();

const b64 = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
const fromB64 = (s: string) => new Float32Array(new Uint8Array(Buffer.from(s, 'base64')).buffer);

async function evalRun(args: string[]): Promise<{ code: number | string; out: string; err: string }> {
  const p = spawnCli(['eval', ...args]);
  const code = await p.exited;
  return { code, out: p.out(), err: p.err() };
}

function readRows(file: string): Record<string, any>[] { // eslint-disable-line @typescript-eslint/no-explicit-any
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

beforeAll(async () => {
  ensureLib();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nla-eval-'));
  ar = await Reconstructor.load({ model: files.model, adapter: files.adapter, layer: files.layer, device: 'cpu', threads: 1 });
  const topics = ['the tide', 'a recipe', 'train timetables', 'a chess opening', 'rain on a roof', 'tax forms'];
  for (let i = 0; i < 24; i++) {
    const text = `Row ${i} talks about ${topics[i % topics.length]} and ${topics[(i * 5) % topics.length]}.`;
    const a = await ar.activation(text, { layer: actLayer });
    acts.set(`row-${i}`, a);
    src.push({ id: `row-${i}`, explanation: `<explanation>${topics[i % topics.length]}</explanation>`, alt: `about ${topics[(i + 1) % topics.length]}`, activation_vector: i % 3 === 0 ? b64(a) : Array.from(a) });
  }
  for (let i = 0; i < 4; i++) src.push({ id: `text-${i}`, text: `A plain text number ${i} about ${topics[i]}.`, explanation: topics[i] });
  src.push({ id: 'short-vector', activation_vector: [1, 2, 3], explanation: 'x' });
  src.push({ id: 'no-explanation', activation_vector: Array.from(acts.get('row-0')!) });
  jsonl = path.join(tmp, 'data.jsonl');
  fs.writeFileSync(jsonl, src.map((r) => JSON.stringify(r)).join('\n') + '\n');
});

afterAll(async () => {
  await ar?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function originalOf(id: string): Promise<Float32Array> | Float32Array {
  const s = src.find((r) => r.id === id)!;
  return acts.get(id) ?? ar.activation(s.text!, { layer: actLayer });
}

describe('JSON lines, AR mode', () => {
  let out: string;
  let rows: Record<string, any>[]; // eslint-disable-line @typescript-eslint/no-explicit-any
  let run: { code: number | string; out: string; err: string };

  beforeAll(async () => {
    out = path.join(tmp, 'ar.jsonl');
    run = await evalRun([...model, '--data', jsonl, '--out', out, '--batch', '8', '--json']);
    rows = readRows(out);
  });

  test('one line per row keyed by id; each row equals the in-process round trip exactly', async () => {
    if (run.code !== 0) throw new Error(run.err);
    expect(rows.map((r) => r.id).sort()).toEqual(src.map((r) => r.id).sort());
    for (const r of rows) {
      const s = src.find((x) => x.id === r.id)!;
      expect(r.index).toBe(src.indexOf(s));
      if (r.id === 'short-vector') {
        expect(r.error).toEqual({ code: 'ERR_NLA_INVALID_ARG', message: expect.stringMatching(/3 values, expected d_model = 256/) });
        continue;
      }
      if (r.id === 'no-explanation') {
        expect(r.error.message).toMatch(/no explanation/);
        continue;
      }
      const orig = await originalOf(r.id);
      const rec = await ar.reconstruct(s.explanation!);
      expect(fromB64(r.reconstruction)).toEqual(rec);
      expect(r.cosine).toBe(cosine(rec, orig));
      expect(r.mse).toBe(directionMse(rec, orig));
      expect(r.tokens).toBe(ar.tokenize(ar.prompt(s.explanation!)).length);
      // a text row's original is computed, and kept for the summary
      if (s.text !== undefined) expect(fromB64(r.activation)).toEqual(orig);
      else expect(r.activation).toBeUndefined();
    }
  });

  test('the summary (stdout --json and <out>.summary.json) is what the rows give: mean ± SEM, FVE against the data set mean', async () => {
    const ok = rows.filter((r) => !r.error).sort((a, b) => a.index - b.index);
    const cos = ok.map((r) => r.cosine as number);
    const mean = cos.reduce((s, x) => s + x, 0) / cos.length;
    const sd = Math.sqrt(cos.reduce((s, x) => s + (x - mean) ** 2, 0) / (cos.length - 1));
    const origs = await Promise.all(ok.map((r) => originalOf(r.id)));
    const mu = meanActivation(origs);
    const base = origs.reduce((s, o) => s + baselineMse(o, mu), 0) / origs.length;
    const mseMean = ok.reduce((s, r) => s + r.mse, 0) / ok.length;
    const printed = JSON.parse(run.out);
    const file = JSON.parse(fs.readFileSync(`${out}.summary.json`, 'utf8'));
    for (const s of [printed, file.summary]) {
      expect(s.rows).toBe(src.length);
      expect(s.ok).toBe(ok.length);
      expect(s.errors).toBe(2);
      expect(s.errorCodes).toEqual({ ERR_NLA_INVALID_ARG: 2 });
      expect(s.cosine.mean).toBeCloseTo(mean, 12);
      expect(s.cosine.sem).toBeCloseTo(sd / Math.sqrt(cos.length), 12);
      expect(s.mse.mean).toBeCloseTo(mseMean, 12);
      expect(s.baselineMse).toBeCloseTo(base, 12);
      expect(s.fve).toBeCloseTo(1 - mseMean / base, 12);
      expect(s.controls).toBeUndefined();
    }
    expect(file.dataset.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(file.model).toMatch(/^[0-9a-f]{64}$/);
  });

  test('without a terminal the progress is plain lines with rate and ETA', () => {
    expect(run.err).toMatch(/^eval: 30\/30 rows \(100%\), [\d.]+ rows\/s, ETA 0s$/m);
    expect(run.err).not.toMatch(/\r/);
  });

  test('a killed run resumes: finished rows are skipped, a cut-off line is redone, every row ends up exactly once', async () => {
    const part = path.join(tmp, 'resume.jsonl');
    const lines = fs.readFileSync(out, 'utf8').split('\n').filter(Boolean);
    fs.writeFileSync(part, lines.slice(0, 10).join('\n') + '\n' + lines[10].slice(0, 40));
    fs.copyFileSync(`${out}.meta.json`, `${part}.meta.json`);
    const r = await evalRun([...model, '--data', jsonl, '--out', part, '--batch', '8']);
    if (r.code !== 0) throw new Error(r.err);
    expect(r.err).toMatch(/resuming, 10 of 30 rows already done/);
    expect(r.err).toMatch(/20 to do/);
    const again = fs.readFileSync(part, 'utf8').split('\n').filter(Boolean);
    expect(again.length).toBe(30);
    expect([...again].sort()).toEqual([...lines].sort());
    // nothing left to do: no model load, same summary
    const r2 = await evalRun([...model, '--data', jsonl, '--out', part, '--json']);
    expect(r2.code).toBe(0);
    expect(r2.err).toMatch(/0 to do/);
    expect(JSON.parse(r2.out)).toEqual(JSON.parse(run.out));
  });

  test('resuming with another mode, data set or model is refused instead of mixing results', async () => {
    const other = await evalRun([...model, '--data', jsonl, '--out', out, '--mode', 'controls']);
    expect(other.code).toBe(1);
    expect(other.err).toMatch(/ERR_NLA_INVALID_ARG: .* holds results computed from other settings/);
    const data2 = path.join(tmp, 'data2.jsonl');
    fs.writeFileSync(data2, fs.readFileSync(jsonl, 'utf8') + JSON.stringify({ id: 'extra', text: 'x', explanation: 'y' }) + '\n');
    const d2 = await evalRun([...model, '--data', data2, '--out', out]);
    expect(d2.code).toBe(1);
    expect(d2.err).toMatch(/another data set/);
    const m2 = await evalRun([...model.map((a) => (a === String(files.layer) ? '5' : a)), '--data', jsonl, '--out', out]);
    expect(m2.code).toBe(1);
    expect(m2.err).toMatch(/other model files/);
  });
});

test('controls mode: empty and gibberish baselines per row, their deltas, and cross-row identity in the summary', async () => {
  const out = path.join(tmp, 'controls.jsonl');
  const r = await evalRun([...model, '--data', jsonl, '--out', out, '--mode', 'controls', '--seed', '7', '--json']);
  if (r.code !== 0) throw new Error(r.err);
  const rows = readRows(out).filter((x) => !x.error).sort((a, b) => a.index - b.index);
  expect(rows.length).toBe(28);
  const empty = await ar.reconstruct('');
  const recs: Float32Array[] = [];
  const origs: Float32Array[] = [];
  for (const row of rows) {
    const s = src[row.index];
    const orig = await originalOf(row.id);
    const gib = await ar.reconstruct(gibberishLike(s.explanation!, 7 + row.index));
    expect(row.emptyCosine).toBe(cosine(empty, orig));
    expect(row.gibberishCosine).toBe(cosine(gib, orig));
    expect(row.contentDelta).toBe(row.cosine - row.emptyCosine);
    expect(row.gibberishDelta).toBe(row.cosine - row.gibberishCosine);
    recs.push(fromB64(row.reconstruction));
    origs.push(orig);
  }
  const s = JSON.parse(r.out);
  const id = crossRowIdentity(recs, origs);
  expect(s.controls.identity).toEqual({ n: 28, top1: id.top1, chance: 1 / 28, margin: id.margin, meanRank: id.meanRank });
  const deltas = rows.map((x) => x.contentDelta as number);
  expect(s.controls.contentDelta.mean).toBeCloseTo(deltas.reduce((a, b) => a + b, 0) / deltas.length, 12);
  expect(s.controls.emptyCosine.n).toBe(28);
});

test('column flags choose the columns; a named column that does not exist is an error listing the columns', async () => {
  const out = path.join(tmp, 'alt.jsonl');
  const r = await evalRun([...model, '--data', jsonl, '--out', out, '--explanation-column', 'alt', '--id-column', 'id', '--limit', '5']);
  if (r.code !== 0) throw new Error(r.err);
  const rows = readRows(out);
  expect(rows.length).toBe(5);
  for (const row of rows) expect(row.cosine).toBe(cosine(await ar.reconstruct(src[row.index].alt!), acts.get(row.id)!));
  const bad = await evalRun([...model, '--data', jsonl, '--out', path.join(tmp, 'x.jsonl'), '--activation-column', 'vec']);
  expect(bad.code).toBe(1);
  expect(bad.err).toMatch(/--activation-column vec: .* has no such column \(it has id, explanation, alt, activation_vector, text\)/);
});

describe('round-trip mode (AV then AR)', () => {
  let nla: Autoencoder;
  let rtData: string;
  const rtSrc: Src[] = [];
  const rtFlags = ['--mode', 'round-trip', '--av', files.av, '--max-tokens', '12', '--temperature', '1', '--seed', '9'];

  beforeAll(async () => {
    nla = await Autoencoder.load({ model: files.model, av: files.av, ar: files.adapter, layer: files.layer, activationLayer: actLayer, device: 'cpu', threads: 1 });
    for (let i = 0; i < 8; i++) rtSrc.push({ id: `row-${i}`, activation_vector: i % 2 ? b64(acts.get(`row-${i}`)!) : Array.from(acts.get(`row-${i}`)!) });
    for (let i = 0; i < 3; i++) rtSrc.push({ id: `text-${i}`, text: `A plain text number ${i} for the verbalizer.` });
    rtSrc.push({ id: 'zeros', activation_vector: Array(files.config.nEmbd).fill(0) });
    rtSrc.push({ id: 'short-vector', activation_vector: [1, 2, 3] });
    rtData = path.join(tmp, 'rt-data.jsonl');
    fs.writeFileSync(rtData, rtSrc.map((r) => JSON.stringify(r)).join('\n') + '\n');
  });
  afterAll(() => nla?.close());

  test('--mode round-trip needs --av', async () => {
    const noAv = await evalRun([...model, '--data', rtData, '--out', path.join(tmp, 'rt-none.jsonl'), '--mode', 'round-trip']);
    expect(noAv.code).toBe(2);
    expect(noAv.err).toMatch(/needs the verbalizer: --av DIR/);
    expect(fs.existsSync(path.join(tmp, 'rt-none.jsonl'))).toBe(false);
  });

  test('texts and activations: each row equals Autoencoder.roundTrip with seed --seed + row index; bad rows are error rows; a killed run resumes to the same lines', async () => {
    const out = path.join(tmp, 'rt.jsonl');
    const r = await evalRun([...model, ...rtFlags, '--data', rtData, '--out', out, '--batch', '4', '--json']);
    if (r.code !== 0) throw new Error(r.err);
    const rows = readRows(out);
    expect(rows.map((x) => x.id).sort()).toEqual(rtSrc.map((x) => x.id).sort());
    // the whole data set in one in-process call: item i samples with seed 9 + i, as row i does in any batch
    const items = rtSrc.slice(0, 11).map((x) => (x.text !== undefined ? x.text : { activation: acts.get(x.id)! }));
    const want = await nla.roundTrip(items, { maxTokens: 12, temperature: 1, seed: 9 });
    expect(new Set(want.map((w) => w.text)).size).toBeGreaterThan(1);
    for (const row of rows) {
      if (row.id === 'zeros') {
        expect(row.error).toEqual({ code: 'ERR_NLA_INVALID_ARG', message: expect.stringMatching(/all zeros/) });
        continue;
      }
      if (row.id === 'short-vector') {
        expect(row.error.message).toMatch(/3 values, expected d_model/);
        continue;
      }
      const w = want[row.index];
      expect(row.explanation).toBe(w.text); // what the AR was given: the AV's raw text
      expect(row.finishReason).toBe(w.finishReason);
      expect(fromB64(row.reconstruction)).toEqual(w.reconstruction);
      expect(row.cosine).toBe(w.cosine);
      expect(row.mse).toBe(w.mse);
      expect(row.tokens).toBe(ar.tokenize(ar.prompt(w.text)).length);
      if (rtSrc[row.index].text !== undefined) expect(fromB64(row.activation)).toEqual(w.activation);
      else expect(row.activation).toBeUndefined();
    }
    const summary = JSON.parse(r.out);
    expect(summary).toMatchObject({ rows: 13, ok: 11, errors: 2, errorCodes: { ERR_NLA_INVALID_ARG: 2 } });
    expect(summary.cosine.mean).toBeCloseTo(want.reduce((s, w) => s + w.cosine, 0) / want.length, 12);

    // cut after 5 rows and in the middle of the 6th; resumed with another batch size, the rows come out the same
    const part = path.join(tmp, 'rt-resume.jsonl');
    const lines = fs.readFileSync(out, 'utf8').split('\n').filter(Boolean);
    fs.writeFileSync(part, lines.slice(0, 5).join('\n') + '\n' + lines[5].slice(0, 30));
    fs.copyFileSync(`${out}.meta.json`, `${part}.meta.json`);
    const again = await evalRun([...model, ...rtFlags, '--data', rtData, '--out', part, '--batch', '3']);
    if (again.code !== 0) throw new Error(again.err);
    expect(again.err).toMatch(/resuming, 5 of 13 rows already done/);
    expect(fs.readFileSync(part, 'utf8').split('\n').filter(Boolean).sort()).toEqual([...lines].sort());
    // another seed is other settings: refused rather than mixed
    const other = await evalRun([...model, ...rtFlags.map((a) => (a === '9' ? '10' : a)), '--data', rtData, '--out', out]);
    expect(other.code).toBe(1);
    expect(other.err).toMatch(/holds results computed from other settings/);
  });

  test('greedy (the default temperature): rows equal the in-process round trip', async () => {
    const out = path.join(tmp, 'rt-greedy.jsonl');
    const r = await evalRun([...model, '--mode', 'round-trip', '--av', files.av, '--max-tokens', '8', '--data', rtData, '--out', out, '--limit', '4']);
    if (r.code !== 0) throw new Error(r.err);
    const rows = readRows(out).sort((a, b) => a.index - b.index);
    const want = await nla.roundTrip(rtSrc.slice(0, 4).map((x) => ({ activation: acts.get(x.id)! })), { maxTokens: 8 });
    expect(rows.map((x) => [x.explanation, x.cosine, x.mse, x.reconstruction])).toEqual(want.map((w) => [w.text, w.cosine, w.mse, b64(w.reconstruction)]));
  });
});

test('Parquet: a list<float> activation_vector column written by hyparquet-writer round-trips through eval', async () => {
  const pq = path.join(tmp, 'data.parquet');
  const rows = src.slice(0, 24).map((s) => ({ id: s.id, explanation: s.explanation!, activation_vector: Array.from(acts.get(s.id)!) }));
  fs.writeFileSync(path.join(tmp, 'rows.json'), JSON.stringify(rows));
  // hyparquet-writer is an ES module: written by a child process
  const script = `
    import { parquetWriteFile } from 'hyparquet-writer';
    import fs from 'node:fs';
    const rows = JSON.parse(fs.readFileSync(process.argv[1], 'utf8'));
    parquetWriteFile({
      filename: process.argv[2],
      columnData: [
        { name: 'id', data: rows.map((r) => r.id) },
        { name: 'explanation', data: rows.map((r) => r.explanation) },
        { name: 'activation_vector', data: rows.map((r) => r.activation_vector) },
      ],
      schema: [
        { name: 'root', num_children: 3 },
        { name: 'id', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
        { name: 'explanation', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
        { name: 'activation_vector', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
        { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
        { name: 'element', type: 'FLOAT', repetition_type: 'OPTIONAL' },
      ],
    });`;
  const code = await new Promise<number | null>((resolve) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', script, path.join(tmp, 'rows.json'), pq], { cwd: ROOT, stdio: 'inherit' });
    p.on('exit', resolve);
  });
  expect(code).toBe(0);
  expect(fs.readFileSync(pq).subarray(0, 4).toString()).toBe('PAR1');
  const out = path.join(tmp, 'pq.jsonl');
  const r = await evalRun([...model, '--data', pq, '--out', out, '--json']);
  if (r.code !== 0) throw new Error(r.err);
  expect(r.err).toMatch(/24 rows from .*data\.parquet \(parquet; columns \{"activation":"activation_vector","explanation":"explanation","id":"id"\}\)/);
  const got = readRows(out);
  expect(got.length).toBe(24);
  // the float32 values come back exactly: each row equals the JSON-lines run's row
  const viaJsonl = new Map(readRows(path.join(tmp, 'ar.jsonl')).map((x) => [x.id, x]));
  for (const row of got) expect(row).toEqual(viaJsonl.get(row.id));
});

test('progress on a terminal is a redrawn bar with rate and ETA', () => {
  let written = '';
  const stream = { isTTY: true, write: (s: string) => ((written += s), true) } as unknown as NodeJS.WriteStream;
  const p = new Progress(200, 50, 'eval', stream);
  p.add(50);
  p.finish();
  expect(written).toMatch(/resuming, 50 of 200 rows already done/);
  expect(written).toMatch(/\reval \[=+ +\] 100\/200 rows \(50%\), [\d.]+ rows\/s, ETA \S+/);
  expect(written.endsWith('\n')).toBe(true);
});
