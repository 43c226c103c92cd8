/**
 * Files from the Hugging Face Hub, kept in the cache layout of Python's `huggingface_hub`, so both share one
 * cache: `<cache>/models--OWNER--NAME/blobs/<etag>` holds the bytes, `snapshots/<commit>/<file>` is a relative
 * symlink to the blob, `refs/<revision>` holds the commit a branch or tag pointed to when it was downloaded.
 *
 * - cache: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub (@huggingface/hub's getHFHubCachePath);
 * - a file already in the cache for the requested revision is used without any network call;
 * - HF_HUB_OFFLINE=1: never use the network (a file that is not cached is an ERR_NLA_HUB);
 * - HF_TOKEN (or the token file `huggingface-cli login` writes), HF_ENDPOINT (a mirror), a pinned `revision`;
 * - downloads go to `blobs/<etag>.incomplete` and resume from it (HTTP Range) after a dropped connection, in
 *   the same call (`retries`) or a later one; the size, and the sha256 of LFS files, are checked before the
 *   blob is used; progress reports bytes, rate and ETA; an AbortSignal stops the download (the partial file
 *   stays, to be resumed).
 *
 * Metadata (revision → commit, file → etag and size) comes from @huggingface/hub (`modelInfo`, `pathsInfo`);
 * the bytes are fetched here, because its downloaders neither resume, report progress nor take a signal, and
 * name snapshots after each file's last commit instead of the revision's commit.
 */
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { NlaError } from './errors';
import type { LoadOptions } from './options';

type HubLib = typeof import('@huggingface/hub');
let hubLib: HubLib | undefined;
/** Loaded on first use: it takes ~80 ms to load and most programs never download anything. */
function lib(): HubLib {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (hubLib ??= require('@huggingface/hub') as HubLib);
}

export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';

export interface HubOptions {
  /** Branch, tag or 40-hex commit (default 'main'). Pin a commit for reproducible results. */
  revision?: string;
  /** Access token (default: HF_TOKEN, else the token file of `huggingface-cli login`). */
  token?: string;
  /** Hub base URL (default: HF_ENDPOINT, else https://huggingface.co). */
  endpoint?: string;
  /** Cache folder (default: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** Never use the network (default: HF_HUB_OFFLINE=1). */
  offline?: boolean;
  signal?: AbortSignal;
  /** Called while a file downloads (at most every 100 ms, and once when it is complete). */
  onProgress?: (progress: DownloadProgress) => void;
  /** Reconnections after a dropped connection within one call, each resuming where the last stopped (default 5). */
  retries?: number;
}

export interface DownloadProgress {
  repo: string;
  file: string;
  /** Bytes on disk, including those an earlier, interrupted download left. */
  downloaded: number;
  total: number;
  /** Bytes that were already on disk when this call started. */
  resumedFrom: number;
  /** Rate of this call's transfer. */
  bytesPerSecond: number;
  /** Seconds left at that rate (null until a rate is known). */
  etaSeconds: number | null;
  done: boolean;
}

export interface HubFile {
  repo: string;
  /** Path inside the repository. */
  file: string;
  revision: string;
  commit: string;
  /** Local path (snapshots/<commit>/<file>). */
  path: string;
  size: number;
  /** True when nothing had to be downloaded. */
  fromCache: boolean;
}

export interface HubSnapshot {
  repo: string;
  revision: string;
  commit: string;
  /** snapshots/<commit>: the repository's files at that commit, as a folder. */
  dir: string;
  files: HubFile[];
}

/** Which files a pretrained component needs from its repository. */
export interface PretrainedFiles {
  required: readonly string[];
  /** Downloaded when the repository has them. */
  optional?: readonly string[];
}

/**
 * The files each pretrained component reads from its repository (the published PEFT folders). A verbalizer or
 * autoencoder adds its entry here and calls `resolvePretrained` the way `Reconstructor.fromPretrained` does.
 */
export const PRETRAINED_FILES = {
  reconstructor: { required: ['adapter_config.json', 'adapter_model.safetensors', 'linear_head.pt'], optional: ['nla_meta.yaml'] },
} as const satisfies Record<string, PretrainedFiles>;

/** `Reconstructor.fromPretrained` options: the load options less `adapter` (the repository is the adapter). */
export interface PretrainedLoadOptions extends Omit<LoadOptions, 'adapter' | 'model'> {
  /** Base model: a GGUF path or an `hf:OWNER/REPO[@REVISION]/FILE.gguf` URI. */
  model: string;
  /** Where and how to download (revision, token, progress, signal, …). */
  hub?: HubOptions;
}

export interface HfUri {
  repo: string;
  revision?: string;
  file: string;
}

const REPO_RE = /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/;
const COMMIT_RE = /^[0-9a-f]{40}$/;
const SHA256_RE = /^[0-9a-f]{64}$/;

function truthy(v: string | undefined): boolean {
  return v !== undefined && /^(1|true|yes|on)$/i.test(v.trim());
}

function checkRepo(repo: unknown): string {
  if (typeof repo !== 'string' || !REPO_RE.test(repo) || repo.includes('..'))
    throw new NlaError('ERR_NLA_INVALID_ARG', `a Hub repository is OWNER/NAME (letters, digits, '-', '_', '.'), got ${JSON.stringify(repo)}`);
  return repo;
}

function checkFile(file: unknown): string {
  if (typeof file !== 'string' || file.length === 0 || file.startsWith('/') || file.includes('\\') || file.includes('\0') ||
    file.split('/').some((s) => s === '' || s === '.' || s === '..'))
    throw new NlaError('ERR_NLA_INVALID_ARG', `a file in a Hub repository is a relative path without '..', got ${JSON.stringify(file)}`);
  return file;
}

function checkRevision(rev: unknown): string {
  if (typeof rev !== 'string' || rev.length === 0 || rev.length > 256 || rev.startsWith('/') || rev.includes('\\') || rev.includes('\0') ||
    rev.split('/').some((s) => s === '' || s === '.' || s === '..'))
    throw new NlaError('ERR_NLA_INVALID_ARG', `invalid revision ${JSON.stringify(rev)}`);
  return rev;
}

/** Parses `hf:OWNER/REPO[@REVISION]/PATH` (a revision containing '/' is percent-encoded); null for anything else. */
export function parseHfUri(uri: string): HfUri | null {
  if (typeof uri !== 'string' || !uri.startsWith('hf:')) return null;
  const rest = uri.slice(3).replace(/^\/\//, '');
  const m = /^([^/@]+)\/([^/@]+)(?:@([^/]+))?\/(.+)$/.exec(rest);
  if (!m) throw new NlaError('ERR_NLA_INVALID_ARG', `an hf: URI is hf:OWNER/REPO[@REVISION]/FILE, got ${JSON.stringify(uri)}`);
  const repo = checkRepo(`${m[1]}/${m[2]}`);
  let revision: string | undefined;
  if (m[3] !== undefined) {
    try {
      revision = checkRevision(decodeURIComponent(m[3]));
    } catch (e) {
      throw e instanceof NlaError ? e : new NlaError('ERR_NLA_INVALID_ARG', `bad revision in ${JSON.stringify(uri)}`);
    }
  }
  return { repo, revision, file: checkFile(m[4]) };
}

/** Parses `hf:OWNER/REPO[@REVISION]` (a whole repository, e.g. an adapter folder); null for anything else. */
export function parseHfRepoUri(uri: string): { repo: string; revision?: string } | null {
  if (typeof uri !== 'string' || !uri.startsWith('hf:')) return null;
  const m = /^([^/@]+)\/([^/@]+)(?:@([^/]+))?\/?$/.exec(uri.slice(3).replace(/^\/\//, ''));
  if (!m) throw new NlaError('ERR_NLA_INVALID_ARG', `a repository URI is hf:OWNER/REPO[@REVISION], got ${JSON.stringify(uri)}`);
  let revision: string | undefined;
  if (m[3] !== undefined) {
    try {
      revision = checkRevision(decodeURIComponent(m[3]));
    } catch (e) {
      throw e instanceof NlaError ? e : new NlaError('ERR_NLA_INVALID_ARG', `bad revision in ${JSON.stringify(uri)}`);
    }
  }
  return { repo: checkRepo(`${m[1]}/${m[2]}`), revision };
}

/** The cache folder in use (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub). */
export function hubCacheDir(): string {
  return lib().getHFHubCachePath();
}

function readTokenFile(): string | undefined {
  const file = process.env.HF_TOKEN_PATH ?? path.join(process.env.HF_HOME ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'huggingface'), 'token');
  try {
    const t = fs.readFileSync(file, 'utf8').trim();
    return t || undefined;
  } catch {
    return undefined;
  }
}

interface Settings {
  revision: string;
  token: string | undefined;
  endpoint: string;
  cacheDir: string;
  offline: boolean;
  signal: AbortSignal | undefined;
  onProgress: ((p: DownloadProgress) => void) | undefined;
  retries: number;
}

const HUB_OPTION_KEYS = new Set(['revision', 'token', 'endpoint', 'cacheDir', 'offline', 'signal', 'onProgress', 'retries']);

function settingsOf(o: HubOptions | undefined): Settings {
  if (o !== undefined && (typeof o !== 'object' || o === null)) throw new NlaError('ERR_NLA_INVALID_ARG', 'hub options must be an object');
  const opts = o ?? {};
  for (const k of Object.keys(opts))
    if (!HUB_OPTION_KEYS.has(k)) throw new NlaError('ERR_NLA_INVALID_ARG', `unknown hub option '${k}' (known: ${[...HUB_OPTION_KEYS].join(', ')})`);
  const str = (v: unknown, name: string): string | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v.length === 0) throw new NlaError('ERR_NLA_INVALID_ARG', `hub option ${name} must be a non-empty string`);
    return v;
  };
  if (opts.signal !== undefined && !(opts.signal instanceof AbortSignal)) throw new NlaError('ERR_NLA_INVALID_ARG', 'hub option signal must be an AbortSignal');
  if (opts.onProgress !== undefined && typeof opts.onProgress !== 'function') throw new NlaError('ERR_NLA_INVALID_ARG', 'hub option onProgress must be a function');
  if (opts.offline !== undefined && typeof opts.offline !== 'boolean') throw new NlaError('ERR_NLA_INVALID_ARG', 'hub option offline must be a boolean');
  if (opts.retries !== undefined && !(Number.isInteger(opts.retries) && opts.retries >= 0 && opts.retries <= 100))
    throw new NlaError('ERR_NLA_INVALID_ARG', 'hub option retries must be an integer in 0..100');
  const endpoint = (str(opts.endpoint, 'endpoint') ?? process.env.HF_ENDPOINT ?? DEFAULT_HUB_ENDPOINT).replace(/\/+$/, '');
  try {
    const u = new URL(endpoint);
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error('not http(s)');
  } catch {
    throw new NlaError('ERR_NLA_INVALID_ARG', `the Hub endpoint must be an http(s) URL, got ${JSON.stringify(endpoint)} (HF_ENDPOINT or hub.endpoint)`);
  }
  const token = str(opts.token, 'token') ?? (process.env.HF_TOKEN?.trim() || undefined) ?? readTokenFile();
  if (token !== undefined && !token.startsWith('hf_'))
    throw new NlaError('ERR_NLA_INVALID_ARG', 'a Hugging Face access token starts with "hf_" (check HF_TOKEN or hub.token)');
  return {
    revision: checkRevision(str(opts.revision, 'revision') ?? 'main'),
    token,
    endpoint,
    cacheDir: path.resolve(str(opts.cacheDir, 'cacheDir') ?? hubCacheDir()),
    offline: opts.offline ?? truthy(process.env.HF_HUB_OFFLINE),
    signal: opts.signal,
    onProgress: opts.onProgress,
    retries: opts.retries ?? 5,
  };
}

function repoDir(s: Settings, repo: string): string {
  return path.join(s.cacheDir, lib().getRepoFolderName({ type: 'model', name: repo }));
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await fsp.stat(p)).isFile();
  } catch {
    return false;
  }
}

/** The commit a revision resolves to in the cache, without the network: itself, or what refs/<revision> recorded. */
async function cachedCommit(storage: string, revision: string): Promise<string | undefined> {
  if (COMMIT_RE.test(revision)) return revision;
  try {
    const c = (await fsp.readFile(path.join(storage, 'refs', revision), 'utf8')).trim();
    return COMMIT_RE.test(c) ? c : undefined;
  } catch {
    return undefined;
  }
}

function aborted(signal: AbortSignal | undefined): NlaError {
  return new NlaError('ERR_NLA_ABORTED', 'the download was aborted (the partial file is kept and resumed next time)', { cause: signal?.reason });
}

/** Turns a failed Hub request (from @huggingface/hub or our own fetch) into an NlaError that says what to do. */
function hubError(e: unknown, what: string, s: Settings): NlaError {
  if (e instanceof NlaError) return e;
  if (s.signal?.aborted) return aborted(s.signal);
  const status = (e as { statusCode?: unknown }).statusCode;
  if (typeof status === 'number') return statusError(status, what, s, (e as Error).message, e);
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const detail = cause?.code ?? cause?.message ?? (e as Error)?.message ?? String(e);
  return new NlaError(
    'ERR_NLA_HUB',
    `${what}: cannot reach ${s.endpoint} (${detail}). Set HF_HUB_OFFLINE=1 to use only the cache, or HF_ENDPOINT for a mirror.`,
    { cause: e },
  );
}

function statusError(status: number, what: string, s: Settings, detail: string, cause?: unknown): NlaError {
  if (status === 401 || status === 403)
    return new NlaError(
      'ERR_NLA_HUB_AUTH',
      `${what}: the Hub answered ${status}: the repository is private or gated, or it does not exist. ` +
        (s.token ? 'The token in use (HF_TOKEN or hub.token) was refused: check that it is valid and has access.' : 'Set HF_TOKEN to a token that has access.') +
        (detail ? ` (${detail})` : ''),
      { cause },
    );
  if (status === 404)
    return new NlaError('ERR_NLA_HUB', `${what}: not found on ${s.endpoint} (404): check the repository name, revision and file${detail ? ` (${detail})` : ''}`, { cause });
  return new NlaError('ERR_NLA_HUB', `${what}: the Hub answered ${status}${detail ? ` (${detail})` : ''}`, { cause });
}

function signalFetch(signal: AbortSignal | undefined): typeof fetch {
  return ((input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => fetch(input, { ...init, signal })) as typeof fetch;
}

async function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) throw aborted(signal);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(aborted(signal));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** GET with redirects followed by hand, so the token goes to the Hub's origin only (not to the CDN it redirects to). */
async function hubGet(url: string, headers: Record<string, string>, s: Settings): Promise<Response> {
  const origin = new URL(s.endpoint).origin;
  for (let hop = 0; hop < 10; hop++) {
    const h: Record<string, string> = { 'Accept-Encoding': 'identity', ...headers };
    if (s.token && new URL(url).origin === origin) h.Authorization = `Bearer ${s.token}`;
    const res = await fetch(url, { headers: h, redirect: 'manual', signal: s.signal });
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      url = new URL(location, url).href;
      continue;
    }
    return res;
  }
  throw new NlaError('ERR_NLA_HUB', `too many redirects for ${url}`);
}

class Dropped extends Error {}

/**
 * Downloads url into `incomplete`, continuing from the bytes already there; verifies size and sha256 (LFS).
 * A dropped connection is retried up to s.retries times, each retry resuming at the last byte received.
 */
async function download(url: string, incomplete: string, size: number, sha256: string | undefined, s: Settings, label: { repo: string; file: string }): Promise<void> {
  let have = 0;
  try {
    have = (await fsp.stat(incomplete)).size;
  } catch {
    /* nothing yet */
  }
  if (have > size) {
    await fsp.truncate(incomplete, 0);
    have = 0;
  }
  let hash: Hash | undefined;
  const rehash = async () => {
    if (!sha256) return;
    hash = createHash('sha256');
    if (have > 0) for await (const chunk of fs.createReadStream(incomplete, { start: 0, end: have - 1 })) hash.update(chunk as Buffer);
  };
  await rehash();
  const resumedFrom = have;
  const t0 = Date.now();
  let lastReport = 0;
  const report = (done: boolean) => {
    if (!s.onProgress) return;
    const now = Date.now();
    if (!done && now - lastReport < 100) return;
    lastReport = now;
    const secs = (now - t0) / 1000;
    const rate = secs > 0 ? (have - resumedFrom) / secs : 0;
    s.onProgress({ ...label, downloaded: have, total: size, resumedFrom, bytesPerSecond: rate, etaSeconds: done ? 0 : rate > 0 ? (size - have) / rate : null, done });
  };
  report(false);
  for (let attempt = 0; have < size; attempt++) {
    if (s.signal?.aborted) throw aborted(s.signal);
    let res: Response;
    try {
      res = await hubGet(url, have > 0 ? { Range: `bytes=${have}-` } : {}, s);
    } catch (e) {
      if (attempt < s.retries && !s.signal?.aborted && !(e instanceof NlaError)) {
        await sleep(Math.min(200 * 2 ** attempt, 5000), s.signal);
        continue;
      }
      throw hubError(e, `downloading ${label.repo}/${label.file}`, s);
    }
    if (res.status === 416 && have > 0) {
      // the server says the range starts at or past the end: what we have may be all of it; verified below
      await res.body?.cancel();
      break;
    }
    if (!res.ok) {
      await res.body?.cancel();
      if ((res.status >= 500 || res.status === 429) && attempt < s.retries) {
        await sleep(Math.min(500 * 2 ** attempt, 10000), s.signal);
        continue;
      }
      throw statusError(res.status, `downloading ${label.repo}/${label.file}`, s, '');
    }
    if (have > 0 && res.status !== 206) {
      // the server ignored the range: start over
      have = 0;
      await fsp.truncate(incomplete, 0);
      await rehash();
    } else if (res.status === 206) {
      const start = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '');
      if (!start || Number(start[1]) !== have) {
        await res.body?.cancel();
        throw new NlaError('ERR_NLA_HUB', `downloading ${label.repo}/${label.file}: the server resumed at the wrong offset (${res.headers.get('content-range')})`);
      }
    }
    const fh = await fsp.open(incomplete, have > 0 ? 'a' : 'w');
    try {
      if (!res.body) throw new Dropped('no body');
      try {
        for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
          if (have + chunk.length > size) throw new NlaError('ERR_NLA_HUB', `downloading ${label.repo}/${label.file}: the server sent more than the ${size} bytes the Hub listed`);
          await fh.write(chunk);
          hash?.update(chunk);
          have += chunk.length;
          report(false);
        }
      } catch (e) {
        if (e instanceof NlaError) throw e;
        if (s.signal?.aborted) throw aborted(s.signal);
        throw new Dropped((e as Error).message);
      }
      if (have < size) throw new Dropped('the connection closed early');
    } catch (e) {
      if (!(e instanceof Dropped)) throw e;
      if (attempt >= s.retries)
        throw new NlaError(
          'ERR_NLA_HUB',
          `downloading ${label.repo}/${label.file}: the connection dropped at ${have} of ${size} bytes (${e.message}); run again to resume from there`,
          { cause: e },
        );
      await sleep(Math.min(200 * 2 ** attempt, 5000), s.signal);
    } finally {
      await fh.close();
    }
  }
  const onDisk = (await fsp.stat(incomplete)).size;
  if (onDisk !== size) {
    await fsp.rm(incomplete, { force: true });
    throw new NlaError('ERR_NLA_HUB', `downloading ${label.repo}/${label.file}: got ${onDisk} bytes, the Hub listed ${size}; the partial file was removed, run again`);
  }
  if (sha256 && hash) {
    const got = hash.digest('hex');
    if (got !== sha256) {
      await fsp.rm(incomplete, { force: true });
      throw new NlaError('ERR_NLA_HUB', `downloading ${label.repo}/${label.file}: sha256 ${got} differs from the Hub's ${sha256}; the file was removed, run again`);
    }
  }
  report(true);
}

/** In-process: one download per blob at a time. */
const inFlight = new Map<string, Promise<void>>();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Across processes: a lock file holding the owner's pid; a lock whose owner is gone is taken over. */
async function withLock<T>(lockPath: string, s: Settings, fn: () => Promise<T>): Promise<T> {
  await fsp.mkdir(path.dirname(lockPath), { recursive: true });
  for (;;) {
    try {
      await fsp.writeFile(lockPath, String(process.pid), { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let pid = NaN;
      let age = Infinity;
      try {
        pid = Number((await fsp.readFile(lockPath, 'utf8')).trim());
        age = Date.now() - (await fsp.stat(lockPath)).mtimeMs;
      } catch {
        continue; // released meanwhile
      }
      const stale = Number.isInteger(pid) && pid > 0 ? pid === process.pid || !pidAlive(pid) : age > 10_000;
      if (stale) await fsp.rm(lockPath, { force: true });
      else await sleep(250, s.signal);
    }
  }
  try {
    return await fn();
  } finally {
    await fsp.rm(lockPath, { force: true });
  }
}

async function linkSnapshot(blob: string, pointer: string): Promise<void> {
  await fsp.mkdir(path.dirname(pointer), { recursive: true });
  const tmp = `${pointer}.${process.pid}.tmp`;
  await fsp.rm(tmp, { force: true });
  try {
    await fsp.symlink(path.relative(path.dirname(pointer), blob), tmp);
  } catch {
    await fsp.copyFile(blob, tmp); // no symlinks here (e.g. Windows without the privilege): copy, as Python does
  }
  await fsp.rename(tmp, pointer);
}

interface RemoteFile {
  file: string;
  etag: string;
  size: number;
  sha256?: string;
}

async function fetchBlob(repo: string, commit: string, r: RemoteFile, s: Settings): Promise<boolean> {
  const storage = repoDir(s, repo);
  const blob = path.join(storage, 'blobs', r.etag);
  const existing = await fsp.stat(blob).catch(() => null);
  if (existing?.isFile() && existing.size === r.size) return false;
  const key = blob;
  while (inFlight.has(key)) await inFlight.get(key)!.catch(() => undefined);
  const job = (async () => {
    await fsp.mkdir(path.dirname(blob), { recursive: true });
    const lock = path.join(s.cacheDir, '.locks', path.basename(storage), `${r.etag}.nla-ar.lock`);
    await withLock(lock, s, async () => {
      const again = await fsp.stat(blob).catch(() => null);
      if (again?.isFile() && again.size === r.size) return; // another process finished it while we waited
      const url = `${s.endpoint}/${repo}/resolve/${commit}/${r.file.split('/').map(encodeURIComponent).join('/')}`;
      await download(url, `${blob}.incomplete`, r.size, r.sha256, s, { repo, file: r.file });
      await fsp.rename(`${blob}.incomplete`, blob);
    });
  })();
  inFlight.set(key, job);
  try {
    await job;
  } finally {
    inFlight.delete(key);
  }
  return true;
}

/** revision → commit (and, when asked, the repository's file list), from the Hub. */
async function remoteCommit(repo: string, s: Settings, withFiles = false): Promise<{ commit: string; files: string[] }> {
  if (COMMIT_RE.test(s.revision) && !withFiles) return { commit: s.revision, files: [] };
  try {
    const info = (await lib().modelInfo({
      name: repo, revision: s.revision, hubUrl: s.endpoint, accessToken: s.token, additionalFields: withFiles ? ['sha', 'filePaths'] : ['sha'], fetch: signalFetch(s.signal),
    })) as { sha?: unknown; filePaths?: unknown };
    if (typeof info.sha !== 'string' || !COMMIT_RE.test(info.sha)) throw new NlaError('ERR_NLA_HUB', `${repo}@${s.revision}: the Hub did not name a commit`);
    const files = Array.isArray(info.filePaths) ? info.filePaths.filter((f): f is string => typeof f === 'string') : [];
    return { commit: info.sha, files };
  } catch (e) {
    throw hubError(e, `${repo}@${s.revision}`, s);
  }
}

async function remoteFiles(repo: string, commit: string, files: string[], s: Settings): Promise<Map<string, RemoteFile>> {
  let infos: { path: string; type: string; oid?: string; size: number; lfs?: { oid: string; size: number } }[];
  try {
    infos = await lib().pathsInfo({ repo: { type: 'model', name: repo }, paths: files, revision: commit, hubUrl: s.endpoint, accessToken: s.token, fetch: signalFetch(s.signal) });
  } catch (e) {
    throw hubError(e, `${repo}@${s.revision}`, s);
  }
  const out = new Map<string, RemoteFile>();
  for (const i of infos) {
    if (i.type !== 'file' || !files.includes(i.path)) continue;
    // the etag Python's cache names blobs by: the sha256 of LFS files, the git blob id of the others
    const etag = i.lfs?.oid ?? i.oid;
    const size = i.lfs?.size ?? i.size;
    if (typeof etag !== 'string' || !/^[0-9a-f]{40,64}$/.test(etag) || !Number.isSafeInteger(size) || size < 0)
      throw new NlaError('ERR_NLA_HUB', `${repo}@${s.revision}: the Hub's description of ${i.path} is malformed`);
    out.set(i.path, { file: i.path, etag, size, sha256: i.lfs && SHA256_RE.test(i.lfs.oid) ? i.lfs.oid : undefined });
  }
  return out;
}

async function writeRef(storage: string, revision: string, commit: string): Promise<void> {
  if (COMMIT_RE.test(revision) && revision === commit) return;
  const ref = path.join(storage, 'refs', revision);
  await fsp.mkdir(path.dirname(ref), { recursive: true });
  const tmp = `${ref}.${process.pid}.tmp`;
  await fsp.writeFile(tmp, commit);
  await fsp.rename(tmp, ref);
}

/**
 * Makes the given files of a repository available locally at one commit and returns their snapshot folder:
 * from the cache when every required file is there for the revision (no network), else from the Hub.
 * The shared resolver behind `fromPretrained` and `nla-ar pull`.
 */
export async function resolvePretrained(repo: string, spec: PretrainedFiles, options?: HubOptions): Promise<HubSnapshot> {
  checkRepo(repo);
  const required = spec.required.map(checkFile);
  const optional = (spec.optional ?? []).map(checkFile).filter((f) => !required.includes(f));
  if (required.length === 0) throw new NlaError('ERR_NLA_INVALID_ARG', 'resolvePretrained needs at least one required file');
  const s = settingsOf(options);
  if (s.signal?.aborted) throw aborted(s.signal);
  const storage = repoDir(s, repo);

  const local = await cachedCommit(storage, s.revision);
  if (local) {
    const dir = path.join(storage, 'snapshots', local);
    const have = await Promise.all([...required, ...optional].map(async (f) => ((await isFile(path.join(dir, f))) ? f : null)));
    if (required.every((f) => have.includes(f))) {
      const files = await Promise.all(have.filter((f): f is string => f !== null).map(async (f) => ({
        repo, file: f, revision: s.revision, commit: local, path: path.join(dir, f), size: (await fsp.stat(path.join(dir, f))).size, fromCache: true,
      })));
      return { repo, revision: s.revision, commit: local, dir, files };
    }
  }
  if (s.offline) {
    throw new NlaError(
      'ERR_NLA_HUB',
      `${repo}@${s.revision}: ${required.join(', ')} not all in the cache (${storage}) and offline mode is on (HF_HUB_OFFLINE=1 or hub.offline): ` +
        'download them once with network access (`nla-ar pull`)',
    );
  }
  const { commit } = await remoteCommit(repo, s);
  const remote = await remoteFiles(repo, commit, [...required, ...optional], s);
  const missing = required.filter((f) => !remote.has(f));
  if (missing.length) throw new NlaError('ERR_NLA_HUB', `${repo}@${s.revision} (commit ${commit}) has no ${missing.join(', ')}`);
  const dir = path.join(storage, 'snapshots', commit);
  const files: HubFile[] = [];
  for (const r of remote.values()) {
    const pointer = path.join(dir, r.file);
    const downloaded = await fetchBlob(repo, commit, r, s);
    if (downloaded || !(await isFile(pointer))) await linkSnapshot(path.join(storage, 'blobs', r.etag), pointer);
    files.push({ repo, file: r.file, revision: s.revision, commit, path: pointer, size: r.size, fromCache: !downloaded });
  }
  await writeRef(storage, s.revision, commit);
  return { repo, revision: s.revision, commit, dir, files };
}

/** One file of a repository, from the cache or the Hub; returns its local path and where it came from. */
export async function hubDownload(repo: string, file: string, options?: HubOptions): Promise<HubFile> {
  const snap = await resolvePretrained(repo, { required: [file] }, options);
  return snap.files.find((f) => f.file === file)!;
}

/** Every file of a repository at a revision (what `nla-ar pull OWNER/REPO` does). Needs the network to list files
 *  unless offline, where an existing snapshot folder for the revision is returned as it is. */
export async function hubSnapshot(repo: string, options?: HubOptions): Promise<HubSnapshot> {
  checkRepo(repo);
  const s = settingsOf(options);
  const storage = repoDir(s, repo);
  if (s.offline) {
    const local = await cachedCommit(storage, s.revision);
    const dir = local && path.join(storage, 'snapshots', local);
    if (!local || !dir || !fs.existsSync(dir))
      throw new NlaError('ERR_NLA_HUB', `${repo}@${s.revision} is not in the cache (${storage}) and offline mode is on (HF_HUB_OFFLINE=1)`);
    const files: HubFile[] = [];
    const walk = async (d: string): Promise<void> => {
      for (const e of await fsp.readdir(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) await walk(p);
        else if (await isFile(p)) files.push({ repo, file: path.relative(dir, p).split(path.sep).join('/'), revision: s.revision, commit: local, path: p, size: (await fsp.stat(p)).size, fromCache: true });
      }
    };
    await walk(dir);
    return { repo, revision: s.revision, commit: local, dir, files };
  }
  const { commit, files: list } = await remoteCommit(repo, s, true);
  if (list.length === 0) throw new NlaError('ERR_NLA_HUB', `${repo}@${s.revision} has no files`);
  const snap = await resolvePretrained(repo, { required: list }, { ...options, revision: commit });
  await writeRef(storage, s.revision, commit);
  return { ...snap, revision: s.revision, files: snap.files.map((f) => ({ ...f, revision: s.revision })) };
}

/** A model path as given, or the local path of an `hf:OWNER/REPO[@REVISION]/FILE` URI (downloaded if needed). */
export async function resolveModelPath(model: string, options?: HubOptions): Promise<string> {
  const uri = parseHfUri(model);
  if (!uri) return model;
  const f = await hubDownload(uri.repo, uri.file, { ...options, ...(uri.revision ? { revision: uri.revision } : {}) });
  return f.path;
}

/** What `fromPretrained` passes to `load`: the snapshot folder as the adapter and the resolved model path. */
export async function resolvePretrainedLoad(
  repo: string,
  component: keyof typeof PRETRAINED_FILES,
  options: PretrainedLoadOptions,
): Promise<{ load: Omit<LoadOptions, 'model' | 'adapter'>; model: string; adapter: string; snapshot: HubSnapshot }> {
  if (typeof options !== 'object' || options === null)
    throw new NlaError('ERR_NLA_INVALID_ARG', 'fromPretrained needs options with at least `model` (a GGUF path or an hf: URI)');
  if ('adapter' in options) throw new NlaError('ERR_NLA_INVALID_ARG', 'fromPretrained takes the adapter from the repository: do not pass `adapter` (use load() for a local folder)');
  const { hub, model, ...load } = options;
  if (typeof model !== 'string' || model.length === 0) throw new NlaError('ERR_NLA_INVALID_ARG', 'fromPretrained: `model` must be a GGUF path or an hf:OWNER/REPO/FILE.gguf URI');
  const snapshot = await resolvePretrained(repo, PRETRAINED_FILES[component], hub);
  // the model's revision is its own (in the URI); the repository's revision does not apply to it
  const { revision: _repoRevision, ...modelHub } = hub ?? {};
  return { load, model: await resolveModelPath(model, modelHub), adapter: snapshot.dir, snapshot };
}

/** "1.2 GB", "512 kB" (SI units, as download tools print). */
export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(n >= 100 ? 0 : 1)} ${units[i]}`;
}

/** One progress line: "linear_head.pt  4.7 MB / 9.4 MB  50%  2.1 MB/s  ETA 2 s". */
export function formatProgress(p: DownloadProgress): string {
  const pct = p.total > 0 ? Math.floor((100 * p.downloaded) / p.total) : 100;
  const eta = p.done ? 'done' : p.etaSeconds === null ? 'ETA …' : `ETA ${p.etaSeconds < 90 ? `${Math.ceil(p.etaSeconds)} s` : `${Math.ceil(p.etaSeconds / 60)} min`}`;
  return `${p.file}  ${formatBytes(p.downloaded)} / ${formatBytes(p.total)}  ${pct}%  ${formatBytes(p.bytesPerSecond)}/s  ${eta}${p.resumedFrom > 0 ? `  (resumed at ${formatBytes(p.resumedFrom)})` : ''}`;
}
