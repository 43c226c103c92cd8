/**
 * Hugging Face Hub downloads (src/hub.ts) against a local stand-in for the Hub (test/helpers/hubServer.ts) on
 * 127.0.0.1: Python's cache layout, cache hits with no request at all, HF_HUB_OFFLINE, pinned revisions, a
 * dropped connection resumed in the same call and in a later one, 401 without / with a bad token, the token
 * kept from the CDN, an AbortSignal, a corrupt download, hf: URIs, Reconstructor.fromPretrained end to end
 * (its result equals load() on the same local files) and the `nla-ar pull` command.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NlaError, Reconstructor } from '../src';
import { hubDownload, hubSnapshot, parseHfUri, parseHfRepoUri, resolveModelPath, type DownloadProgress } from '../src/hub';
import { startFakeHub, fakeSha, gitBlobOid, sha256, type FakeHub } from './helpers/hubServer';
import { demoFiles } from './helpers/demo';
import { ensureLib, LIB } from './helpers/build';

const TOKEN = 'hf_fake_token_for_tests';
const bytes = (n: number, seed: number) => {
  const b = Buffer.alloc(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    b[i] = s & 0xff;
  }
  return b;
};

const OLD = fakeSha('adapter-commit-1');
const NEW = fakeSha('adapter-commit-2');
const big = bytes(3 << 20, 7); // 3 MiB: several chunks, so a drop lands mid-file
const demo = demoFiles();
const adapterFiles = (dir: string) => Object.fromEntries(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f))]));

let hub: FakeHub;
let tmp: string;
let cacheDir: string;
const saved: Record<string, string | undefined> = {};

async function expectNlaError(p: Promise<unknown>, code: string, message?: RegExp): Promise<NlaError> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  if (!(err instanceof NlaError)) throw new Error(`expected an NlaError ${code}, got ${err === undefined ? 'success' : String(err)}`);
  expect(err.code).toBe(code);
  if (message) expect(err.message).toMatch(message);
  return err;
}

beforeAll(async () => {
  for (const k of ['HF_TOKEN', 'HF_HUB_OFFLINE', 'HF_ENDPOINT', 'HF_HOME', 'HF_HUB_CACHE', 'HF_TOKEN_PATH']) {
    saved[k] = process.env[k];
    delete process.env[k];
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nla-hub-'));
  process.env.HF_TOKEN_PATH = path.join(tmp, 'no-token-file'); // never the developer's own login
  hub = await startFakeHub([
    {
      id: 'acme/tiny-ar',
      commits: [
        { sha: OLD, files: { 'adapter_config.json': Buffer.from('{"old": true}\n'), 'big.bin': bytes(1000, 3) } },
        { sha: NEW, files: { ...adapterFiles(demo.adapter), 'big.bin': big, 'sub/dir/notes.txt': Buffer.from('nested\n') } },
      ],
      lfs: ['big.bin', 'adapter_model.safetensors', 'linear_head.pt'],
    },
    { id: 'acme/tiny-gguf', commits: [{ sha: fakeSha('gguf'), files: { 'tiny.gguf': fs.readFileSync(demo.model) } }], lfs: ['tiny.gguf'] },
    { id: 'acme/private', private: true, commits: [{ sha: fakeSha('private'), files: { 'secret.bin': bytes(200_000, 9), 'small.txt': Buffer.from('hi\n') } }], lfs: ['secret.bin'] },
  ], TOKEN);
}, 120_000);

afterAll(async () => {
  await hub?.close();
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

beforeEach(() => {
  cacheDir = fs.mkdtempSync(path.join(tmp, 'cache-'));
  hub.requests.length = 0;
});

const opts = (extra: object = {}) => ({ endpoint: hub.url, cacheDir, ...extra });

test('a download lands in Python huggingface_hub\'s layout: blobs/<etag>, snapshots/<commit>/<file> → ../../blobs, refs/main', async () => {
  const f = await hubDownload('acme/tiny-ar', 'big.bin', opts());
  const storage = path.join(cacheDir, 'models--acme--tiny-ar');
  expect(f).toMatchObject({ repo: 'acme/tiny-ar', file: 'big.bin', revision: 'main', commit: NEW, size: big.length, fromCache: false });
  expect(f.path).toBe(path.join(storage, 'snapshots', NEW, 'big.bin'));
  expect(fs.readFileSync(f.path).equals(big)).toBe(true);
  // LFS files are named by their sha256, as Python does (X-Linked-Etag)
  expect(fs.readlinkSync(f.path)).toBe(path.join('..', '..', 'blobs', sha256(big)));
  expect(fs.readFileSync(path.join(storage, 'refs', 'main'), 'utf8')).toBe(NEW);
  expect(fs.readdirSync(path.join(storage, 'blobs'))).toEqual([sha256(big)]); // no .incomplete left
  // a non-LFS file is named by its git blob id; a nested one gets a deeper relative link
  const n = await hubDownload('acme/tiny-ar', 'sub/dir/notes.txt', opts());
  expect(fs.readlinkSync(n.path)).toBe(path.join('..', '..', '..', '..', 'blobs', gitBlobOid(Buffer.from('nested\n'))));
  // the token-less request went to the Hub, the LFS bytes came from the CDN the Hub redirected to
  expect(hub.requests.some((r) => r.server === 'cdn' && r.url === `/blobs/${sha256(big)}`)).toBe(true);
});

test('a file already in the cache is used without any network call (also for a branch, through refs/)', async () => {
  await hubDownload('acme/tiny-ar', 'adapter_config.json', opts());
  hub.requests.length = 0;
  const again = await hubDownload('acme/tiny-ar', 'adapter_config.json', opts());
  expect(again.fromCache).toBe(true);
  expect(hub.requests).toEqual([]);
  // even with the Hub unreachable
  const offlineEndpoint = await hubDownload('acme/tiny-ar', 'adapter_config.json', { cacheDir, endpoint: 'http://127.0.0.1:9' });
  expect(offlineEndpoint.path).toBe(again.path);
});

test('HF_HUB_OFFLINE=1: cached files are used, a missing one is ERR_NLA_HUB naming offline mode, and nothing is requested', async () => {
  await hubDownload('acme/tiny-ar', 'adapter_config.json', opts());
  hub.requests.length = 0;
  process.env.HF_HUB_OFFLINE = '1';
  try {
    expect((await hubDownload('acme/tiny-ar', 'adapter_config.json', opts())).fromCache).toBe(true);
    await expectNlaError(hubDownload('acme/tiny-ar', 'big.bin', opts()), 'ERR_NLA_HUB', /offline/);
    await expectNlaError(hubSnapshot('acme/never-downloaded', opts()), 'ERR_NLA_HUB', /offline/);
  } finally {
    delete process.env.HF_HUB_OFFLINE;
  }
  expect(hub.requests).toEqual([]);
});

test('a pinned revision gets that commit\'s bytes in snapshots/<commit>, and writes no ref for a commit hash', async () => {
  const old = await hubDownload('acme/tiny-ar', 'adapter_config.json', opts({ revision: OLD }));
  expect(old.commit).toBe(OLD);
  expect(fs.readFileSync(old.path, 'utf8')).toBe('{"old": true}\n');
  expect(fs.existsSync(path.join(cacheDir, 'models--acme--tiny-ar', 'refs'))).toBe(false);
  const cur = await hubDownload('acme/tiny-ar', 'adapter_config.json', opts());
  expect(cur.commit).toBe(NEW);
  expect(fs.readFileSync(cur.path).equals(fs.readFileSync(path.join(demo.adapter, 'adapter_config.json')))).toBe(true);
  await expectNlaError(hubDownload('acme/tiny-ar', 'adapter_config.json', opts({ revision: 'no-such-branch' })), 'ERR_NLA_HUB', /404|not found/);
});

test('a connection dropped mid-file is resumed in the same call with a Range request, and progress reports it', async () => {
  hub.drop('big.bin', 1_000_000);
  const events: DownloadProgress[] = [];
  const f = await hubDownload('acme/tiny-ar', 'big.bin', opts({ onProgress: (p: DownloadProgress) => events.push(p) }));
  expect(fs.readFileSync(f.path).equals(big)).toBe(true);
  const gets = hub.requests.filter((r) => r.server === 'cdn');
  expect(gets.length).toBe(2);
  expect(gets[0].range).toBeUndefined();
  const resumedAt = Number(/^bytes=(\d+)-$/.exec(gets[1].range ?? '')?.[1]);
  expect(resumedAt).toBeGreaterThan(0);
  expect(resumedAt).toBeLessThanOrEqual(1_000_000);
  const last = events[events.length - 1];
  expect(last).toMatchObject({ file: 'big.bin', downloaded: big.length, total: big.length, done: true, etaSeconds: 0 });
  for (let i = 1; i < events.length; i++) expect(events[i].downloaded).toBeGreaterThanOrEqual(events[i - 1].downloaded);
  expect(events.every((e) => e.total === big.length && e.bytesPerSecond >= 0)).toBe(true);
});

test('with retries: 0 a dropped connection fails, keeps the partial file, and the next call resumes from it', async () => {
  hub.drop('big.bin', 1_500_000);
  const err = await expectNlaError(hubDownload('acme/tiny-ar', 'big.bin', opts({ retries: 0 })), 'ERR_NLA_HUB', /dropped at \d+ of 3145728 bytes.*run again to resume/);
  const partial = path.join(cacheDir, 'models--acme--tiny-ar', 'blobs', `${sha256(big)}.incomplete`);
  const have = fs.statSync(partial).size;
  expect(have).toBeGreaterThan(0);
  expect(err.message).toContain(`dropped at ${have} of`);
  hub.requests.length = 0;
  const events: DownloadProgress[] = [];
  const f = await hubDownload('acme/tiny-ar', 'big.bin', opts({ retries: 0, onProgress: (p: DownloadProgress) => events.push(p) }));
  expect(fs.readFileSync(f.path).equals(big)).toBe(true);
  expect(hub.requests.filter((r) => r.server === 'cdn').map((r) => r.range)).toEqual([`bytes=${have}-`]);
  expect(events[0].resumedFrom).toBe(have);
  expect(fs.existsSync(partial)).toBe(false);
});

test('401: a private repository without a token is ERR_NLA_HUB_AUTH naming HF_TOKEN; a bad token says it was refused', async () => {
  await expectNlaError(hubDownload('acme/private', 'small.txt', opts()), 'ERR_NLA_HUB_AUTH', /401.*HF_TOKEN/);
  await expectNlaError(hubDownload('acme/private', 'small.txt', opts({ token: 'hf_wrong' })), 'ERR_NLA_HUB_AUTH', /was refused/);
  await expectNlaError(hubDownload('acme/private', 'small.txt', opts({ token: 'not-a-token' })), 'ERR_NLA_INVALID_ARG', /hf_/);
});

test('HF_TOKEN authorizes a private repository; the token goes to the Hub only, never to the CDN it redirects to', async () => {
  process.env.HF_TOKEN = TOKEN;
  try {
    const f = await hubDownload('acme/private', 'secret.bin', opts());
    expect(fs.statSync(f.path).size).toBe(200_000);
  } finally {
    delete process.env.HF_TOKEN;
  }
  const toHub = hub.requests.filter((r) => r.server === 'hub');
  expect(toHub.length).toBeGreaterThan(0);
  expect(toHub.every((r) => r.authorization === `Bearer ${TOKEN}`)).toBe(true);
  const toCdn = hub.requests.filter((r) => r.server === 'cdn');
  expect(toCdn.length).toBe(1);
  expect(toCdn[0].authorization).toBeUndefined();
});

test('HF_ENDPOINT and HF_HOME are honoured (cache in $HF_HOME/hub)', async () => {
  process.env.HF_ENDPOINT = hub.url;
  process.env.HF_HOME = path.join(cacheDir, 'home');
  try {
    const f = await hubDownload('acme/tiny-ar', 'adapter_config.json');
    expect(f.path.startsWith(path.join(cacheDir, 'home', 'hub', 'models--acme--tiny-ar', 'snapshots'))).toBe(true);
  } finally {
    delete process.env.HF_ENDPOINT;
    delete process.env.HF_HOME;
  }
});

test('an AbortSignal stops a download with ERR_NLA_ABORTED and keeps the partial file for later', async () => {
  hub.slow('secret.bin');
  const ac = new AbortController();
  let seen = 0;
  const p = hubDownload('acme/private', 'secret.bin', opts({
    token: TOKEN,
    onProgress: (e: DownloadProgress) => {
      seen = e.downloaded;
      if (e.downloaded > 20_000) ac.abort();
    },
    signal: ac.signal,
  }));
  await expectNlaError(p, 'ERR_NLA_ABORTED');
  expect(seen).toBeGreaterThan(20_000);
  const partial = fs.readdirSync(path.join(cacheDir, 'models--acme--private', 'blobs'));
  expect(partial.some((f) => f.endsWith('.incomplete'))).toBe(true);
  // an already-aborted signal rejects before any request
  hub.requests.length = 0;
  await expectNlaError(hubDownload('acme/tiny-ar', 'big.bin', opts({ signal: AbortSignal.abort() })), 'ERR_NLA_ABORTED');
  expect(hub.requests).toEqual([]);
});

test('bytes that do not match the Hub\'s sha256 are refused and removed', async () => {
  hub.corrupt('linear_head.pt');
  await expectNlaError(hubDownload('acme/tiny-ar', 'linear_head.pt', opts()), 'ERR_NLA_HUB', /sha256/);
  const blobs = path.join(cacheDir, 'models--acme--tiny-ar', 'blobs');
  expect(fs.existsSync(blobs) ? fs.readdirSync(blobs) : []).toEqual([]);
});

test('bad repository names, paths and URIs are ERR_NLA_INVALID_ARG before any request', async () => {
  for (const [repo, file] of [['acme', 'x'], ['../etc/x', 'y'], ['acme/tiny-ar', '../../x'], ['acme/tiny-ar', '/abs'], ['acme/tiny-ar', 'a//b']])
    await expectNlaError(hubDownload(repo, file, opts()), 'ERR_NLA_INVALID_ARG');
  await expectNlaError(hubDownload('acme/tiny-ar', 'x', opts({ revison: 'main' })), 'ERR_NLA_INVALID_ARG', /unknown hub option 'revison'/);
  expect(hub.requests).toEqual([]);
  expect(parseHfUri('hf:acme/tiny-gguf/tiny.gguf')).toEqual({ repo: 'acme/tiny-gguf', revision: undefined, file: 'tiny.gguf' });
  expect(parseHfUri('hf://acme/tiny-gguf@refs%2Fpr%2F1/sub/m.gguf')).toEqual({ repo: 'acme/tiny-gguf', revision: 'refs/pr/1', file: 'sub/m.gguf' });
  expect(parseHfUri('/local/model.gguf')).toBeNull();
  expect(() => parseHfUri('hf:acme/tiny-gguf')).toThrow(NlaError);
  expect(() => parseHfUri('hf:acme/x/../../etc/passwd')).toThrow(NlaError);
  expect(parseHfRepoUri('hf:acme/tiny-ar@v1')).toEqual({ repo: 'acme/tiny-ar', revision: 'v1' });
});

test('Reconstructor.fromPretrained (model as an hf: URI) downloads, caches and gives exactly what load() gives on the same files', async () => {
  const events: DownloadProgress[] = [];
  const hubOpts = { endpoint: hub.url, cacheDir, onProgress: (p: DownloadProgress) => events.push(p) };
  const ar = await Reconstructor.fromPretrained('acme/tiny-ar', { model: 'hf:acme/tiny-gguf/tiny.gguf', layer: demo.layer, device: 'cpu', hub: hubOpts });
  const local = await Reconstructor.load({ model: demo.model, adapter: demo.adapter, layer: demo.layer, device: 'cpu' });
  try {
    const text = '<explanation>downloaded, then loaded</explanation>';
    expect(Array.from(await ar.reconstruct(text))).toEqual(Array.from(await local.reconstruct(text)));
    expect(ar.info.adapter?.dir).toBe(path.join(cacheDir, 'models--acme--tiny-ar', 'snapshots', NEW));
    // only the AR's files were fetched, not the rest of the repository
    expect(new Set(events.filter((e) => e.done).map((e) => e.file))).toEqual(new Set(['adapter_config.json', 'adapter_model.safetensors', 'linear_head.pt', 'tiny.gguf']));
    expect(fs.existsSync(path.join(cacheDir, 'models--acme--tiny-ar', 'snapshots', NEW, 'big.bin'))).toBe(false);
  } finally {
    await ar.close();
    await local.close();
  }
  hub.requests.length = 0;
  const again = await Reconstructor.fromPretrained('acme/tiny-ar', { model: 'hf:acme/tiny-gguf/tiny.gguf', layer: demo.layer, device: 'cpu', hub: { endpoint: hub.url, cacheDir } });
  await again.close();
  expect(hub.requests).toEqual([]);
  expect(await resolveModelPath(demo.model)).toBe(demo.model);
  await expectNlaError(Reconstructor.fromPretrained('acme/tiny-ar', { model: demo.model, adapter: demo.adapter } as never), 'ERR_NLA_INVALID_ARG', /adapter/);
  await expectNlaError(Reconstructor.fromPretrained('acme/tiny-gguf', { model: demo.model, hub: { endpoint: hub.url, cacheDir } }), 'ERR_NLA_HUB', /has no adapter_config.json/);
});

describe('nla-ar pull', () => {
  beforeAll(() => ensureLib());
  const cli = (args: string[], env: Record<string, string>) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const p = spawn(process.execPath, [path.join(LIB, 'cli.js'), ...args], { env: { ...process.env, ...env } });
      let stdout = '', stderr = '';
      p.stdout.on('data', (c: Buffer) => (stdout += c));
      p.stderr.on('data', (c: Buffer) => (stderr += c));
      p.on('error', reject);
      p.on('close', (code) => resolve({ code, stdout, stderr }));
    });

  test('REPO:FILE prints the cached path with progress on stderr; REPO fetches every file; a rerun is served from the cache', async () => {
    const env = { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cacheDir };
    const one = await cli(['pull', 'acme/tiny-ar:big.bin'], env);
    expect(one.code).toBe(0);
    expect(one.stdout.trim()).toBe(path.join(cacheDir, 'models--acme--tiny-ar', 'snapshots', NEW, 'big.bin'));
    expect(one.stderr).toMatch(/big\.bin .*3\.1 MB \/ 3\.1 MB\s+100%.*done/);
    const all = await cli(['pull', 'acme/tiny-ar', '--json'], env);
    expect(all.code).toBe(0);
    const snap = JSON.parse(all.stdout) as { dir: string; files: { file: string; fromCache: boolean }[] };
    expect(snap.files.map((f) => f.file).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'big.bin', 'linear_head.pt', 'sub/dir/notes.txt']);
    expect(snap.files.find((f) => f.file === 'big.bin')?.fromCache).toBe(true);
    hub.requests.length = 0;
    const cached = await cli(['pull', 'hf:acme/tiny-ar/big.bin'], { ...env, HF_HUB_OFFLINE: '1' });
    expect(cached.code).toBe(0);
    expect(hub.requests).toEqual([]);
    const denied = await cli(['pull', 'acme/private:small.txt'], env);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/ERR_NLA_HUB_AUTH/);
    const usage = await cli(['pull'], env);
    expect(usage.code).toBe(2);
  });
});

// Python's huggingface_hub and nla-ar share one cache. Needs a Python with huggingface_hub (not installed in CI:
// `python3 -m venv V && V/bin/pip install huggingface_hub`, then NLA_HF_PYTHON=V/bin/python); docs/verification.md
// records a run.
const PY = process.env.NLA_HF_PYTHON;
(PY ? describe : describe.skip)('the same cache as Python huggingface_hub (NLA_HF_PYTHON)', () => {
  let pyHub: FakeHub;
  beforeAll(async () => {
    // Python follows redirects to the same host name, so the CDN is named 'localhost' here (another host for it)
    pyHub = await startFakeHub([{ id: 'acme/shared', commits: [{ sha: fakeSha('shared'), files: { 'a.json': Buffer.from('{}\n'), 'w.bin': bytes(300_000, 5), 'd/n.txt': Buffer.from('n\n') } }], lfs: ['w.bin'] }], TOKEN, 'localhost');
  });
  afterAll(() => pyHub.close());
  const files = ['a.json', 'w.bin', 'd/n.txt'];
  const listing = (dir: string): string[] => {
    const out: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        const rel = path.relative(dir, p);
        if (rel.startsWith('.locks') || rel === 'CACHEDIR.TAG') continue; // Python's lock files and cache marker
        if (e.isSymbolicLink()) out.push(`${rel} -> ${fs.readlinkSync(p)}`);
        else if (e.isDirectory()) walk(p);
        else out.push(`${rel} ${sha256(fs.readFileSync(p))}`);
      }
    };
    walk(dir);
    return out.sort();
  };
  // asynchronous: the fake Hub runs in this process and must keep answering
  const python = (code: string, env: Record<string, string> = {}) =>
    new Promise<string>((resolve, reject) => {
      const p = spawn(PY!, ['-c', code], { env: { ...process.env, HF_HUB_DISABLE_TELEMETRY: '1', ...env } });
      let out = '', err = '';
      p.stdout.on('data', (c: Buffer) => (out += c));
      p.stderr.on('data', (c: Buffer) => (err += c));
      p.on('error', reject);
      p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`python failed:\n${err}`))));
    });

  test('both write the same tree, and each reads the other\'s cache offline', async () => {
    const pyCache = path.join(cacheDir, 'py'), nodeCache = path.join(cacheDir, 'node');
    await python(`from huggingface_hub import hf_hub_download\nfor f in ${JSON.stringify(files)}: hf_hub_download('acme/shared', f, cache_dir=${JSON.stringify(pyCache)}, endpoint=${JSON.stringify(pyHub.url)})`);
    for (const f of files) await hubDownload('acme/shared', f, { cacheDir: nodeCache, endpoint: pyHub.url });
    expect(listing(nodeCache)).toEqual(listing(pyCache));
    const fromNode = await python(`from huggingface_hub import hf_hub_download\nfor f in ${JSON.stringify(files)}: print(hf_hub_download('acme/shared', f, cache_dir=${JSON.stringify(nodeCache)}))`, { HF_HUB_OFFLINE: '1' });
    expect(fromNode.trim().split('\n')).toEqual(files.map((f) => path.join(nodeCache, 'models--acme--shared', 'snapshots', fakeSha('shared'), f)));
    pyHub.requests.length = 0;
    for (const f of files) expect((await hubDownload('acme/shared', f, { cacheDir: pyCache, endpoint: pyHub.url })).fromCache).toBe(true);
    expect(pyHub.requests).toEqual([]);
  });
});
