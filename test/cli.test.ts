/**
 * The command line (`node lib/cli.js`, the package's `nla-ar` bin), spawned as a user would run it: demo,
 * reconstruct, tokenize, info, round-trip, and the exit codes (0 ok, 1 error naming the NlaError code,
 * 2 bad usage with the usage text). Numbers printed with --json must equal what the API returns for the
 * same inputs to 1e-6 (JSON prints float32 values as shortest round-trip doubles, so they are in fact exact).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Reconstructor } from '../src';
import { ensureLib, LIB, ROOT } from './helpers/build';
import { demoModelConfig } from '../tools/demo';
import { demoFiles } from './helpers/demo';

const CLI = path.join(LIB, 'cli.js');
const files = demoFiles();
const d = files.config.nEmbd;
const L = String(files.layer);
let tmp: string;
let ar: Reconstructor;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI asynchronously (so jest's workers keep running) with a clean environment for the cache. */
function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, NLA_AR_CACHE: path.join(tmp, 'cache'), ...env } });
    let stdout = '', stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Fails with the full output when the exit code is not the expected one. */
function expectExit(r: Run, code: number): void {
  if (r.code !== code) throw new Error(`expected exit ${code}, got ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const common = ['--model', files.model, '--adapter', files.adapter, '--layer', L, '--device', 'cpu'];

beforeAll(async () => {
  ensureLib();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nla-cli-'));
  ar = await Reconstructor.load({ model: files.model, adapter: files.adapter, layer: files.layer, device: 'cpu' });
});
afterAll(async () => {
  await ar?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('demo', () => {
  test('`demo` exits 0, says the weights are synthetic, and uses the shipped demo files', async () => {
    const r = await cli(['demo']);
    expectExit(r, 0);
    expect(r.stdout).toMatch(/SYNTHETIC weights/);
    expect(r.stdout).toMatch(/reconstruct\(/);
    expect(r.stdout).toMatch(/cos = -?\d\.\d{4}/);
    expect(r.stdout).toContain(path.join(ROOT, 'demo', 'model.gguf'));
  });

  test('`demo --json` prints one parseable JSON document with synthetic: true and d-long reconstructions', async () => {
    const r = await cli(['demo', '--json']);
    expectExit(r, 0);
    const j = JSON.parse(r.stdout) as { synthetic: boolean; info: { backend: string }; reconstructions: number[][]; roundTrip: { cosine: number; mse: number }[] };
    expect(j.synthetic).toBe(true);
    expect(j.info.backend).toBe('cpu');
    expect(j.reconstructions).toHaveLength(3);
    for (const v of j.reconstructions) expect(v).toHaveLength(demoModelConfig().nEmbd); // the shipped demo's d_model
    for (const rt of j.roundTrip) expect(Math.abs(rt.mse - 2 * (1 - rt.cosine))).toBeLessThan(1e-9);
  });
});

describe('reconstruct', () => {
  test('`reconstruct --json "text"` gives [{explanation, reconstruction}] equal to the API result', async () => {
    const texts = ['<explanation>The text is about rain.</explanation>', 'second one'];
    const r = await cli(['reconstruct', ...common, '--json', ...texts]);
    expectExit(r, 0);
    const out = JSON.parse(r.stdout) as { explanation: string; reconstruction: number[] }[];
    expect(out.map((o) => o.explanation)).toEqual(texts);
    const api = await ar.reconstruct(texts);
    out.forEach((o, i) => {
      expect(o.reconstruction).toHaveLength(d);
      expect(maxAbsDiff(o.reconstruction, api[i])).toBeLessThanOrEqual(1e-6);
    });
  });

  test('`reconstruct --file` reads plain lines and JSON lines', async () => {
    const f = path.join(tmp, 'expl.txt');
    fs.writeFileSync(f, 'plain line one\n\n"a JSON string"\n{"explanation": "an object"}\n');
    const r = await cli(['reconstruct', ...common, '--file', f, '--json']);
    expectExit(r, 0);
    const out = JSON.parse(r.stdout) as { explanation: string; reconstruction: number[] }[];
    expect(out.map((o) => o.explanation)).toEqual(['plain line one', 'a JSON string', 'an object']);
    expect(maxAbsDiff(out[2].reconstruction, await ar.reconstruct('an object'))).toBeLessThanOrEqual(1e-6);
  });

  test('human output lists each explanation with the vector norm and d', async () => {
    const r = await cli(['reconstruct', ...common, 'hello there']);
    expectExit(r, 0);
    expect(r.stdout).toMatch(/1\. "hello there"/);
    expect(r.stdout).toContain(`d = ${d}`);
  });
});

describe('tokenize, info, round-trip', () => {
  test('`tokenize --model M --json "Hello"` prints the ids, BOS first, as the API does', async () => {
    const r = await cli(['tokenize', '--model', files.model, '--json', 'Hello']);
    expectExit(r, 0);
    const ids = JSON.parse(r.stdout) as number[];
    expect(ids).toEqual(Array.from(ar.tokenize('Hello')));
    expect(ids[0]).toBe(2);
    const noBos = await cli(['tokenize', '--model', files.model, '--json', '--no-bos', 'Hello']);
    expect(JSON.parse(noBos.stdout)).toEqual(ids.slice(1));
  });

  test('`info --model --adapter` describes model, backend, adapter and head', async () => {
    const r = await cli(['info', ...common]);
    expectExit(r, 0);
    expect(r.stdout).toMatch(/gemma4: 8 blocks, d_model 256/);
    expect(r.stdout).toMatch(/backend\s+cpu/);
    expect(r.stdout).toMatch(/LORA r=8 alpha=16/);
    expect(r.stdout).toMatch(/head\s+.*linear_head\.pt: 256 → 256/);
    const j = await cli(['info', ...common, '--json']);
    expectExit(j, 0);
    const info = JSON.parse(j.stdout) as { layer: number; model: { nEmbd: number }; adapter: { rank: number } };
    expect([info.layer, info.model.nEmbd, info.adapter.rank]).toEqual([files.layer, d, 8]);
  });

  test('`round-trip --file` gives cosine/mse per line equal to the API', async () => {
    const acts = await Promise.all(['first source text', 'second source'].map((t) => ar.activation(t, { layer: 7 })));
    const items = [{ activation: Array.from(acts[0]), explanation: 'about a first thing' }, { activation: Array.from(acts[1]), explanation: '' }];
    const f = path.join(tmp, 'rt.jsonl');
    fs.writeFileSync(f, items.map((i) => JSON.stringify(i)).join('\n') + '\n');
    const r = await cli(['round-trip', ...common, '--file', f, '--json']);
    expectExit(r, 0);
    const out = JSON.parse(r.stdout) as { explanation: string; cosine: number; mse: number }[];
    const api = await ar.roundTrip(items);
    expect(out).toHaveLength(2);
    out.forEach((o, i) => {
      expect(o.explanation).toBe(items[i].explanation);
      expect(Math.abs(o.cosine - api[i].cosine)).toBeLessThan(1e-12);
      expect(Math.abs(o.mse - api[i].mse)).toBeLessThan(1e-12);
    });
  });
});

describe('exit codes', () => {
  test('bad usage exits 2 with the usage text on stderr', async () => {
    for (const args of [[], ['bogus-command'], ['reconstruct', '--wat'], ['reconstruct', '--model', files.model], ['tokenize', '--json', 'x'], ['reconstruct', ...common, '--layer', 'abc', 'x']]) {
      const r = await cli(args);
      if (r.code !== 2) throw new Error(`nla-ar ${args.join(' ')}: expected exit 2, got ${r.code}\n${r.stdout}\n${r.stderr}`);
      expect(r.stderr).toContain('Usage:');
    }
  });

  test('--help exits 0 with the usage text on stdout', async () => {
    const r = await cli(['--help']);
    expectExit(r, 0);
    expect(r.stdout).toContain('Usage:');
  });

  test('a missing model exits 1 with the error code on stderr', async () => {
    const r = await cli(['reconstruct', '--model', path.join(tmp, 'missing.gguf'), '--adapter', files.adapter, 'x']);
    expectExit(r, 1);
    expect(r.stderr).toMatch(/^nla-ar: ERR_NLA_IO: .*missing\.gguf/m);
    expect(r.stdout).toBe('');
  });

  test('an engine error (layer past the model) exits 1 naming ERR_NLA_INVALID_ARG', async () => {
    const r = await cli(['reconstruct', '--model', files.model, '--adapter', files.adapter, 'x']); // default layer 17 > 8 blocks
    expectExit(r, 1);
    expect(r.stderr).toMatch(/ERR_NLA_INVALID_ARG: layer 17 does not exist/);
  });
});
