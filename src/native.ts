/**
 * Loads the native binding. Two variants may exist: the CPU build (package root) and
 * the CUDA build (variants/cuda), each as a local build or a shipped prebuild
 * (node-gyp-build decides which). 'auto' uses CUDA when its binary loads and reports a
 * device, otherwise CPU, and records why. The CUDA binary is first loaded in a child process
 * (probeCuda), so a broken binary or driver cannot take the host process down.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NlaError, isNlaErrorCode } from './errors';

export type Device = 'auto' | 'cpu' | 'cuda';

export interface NativeAdapterInfo {
  /** The adapter's id on its model. */
  id: number;
  dir: string;
  peftType: string;
  rank: number;
  alpha: number;
  useRslora: boolean;
  baseModel: string;
  pairs: number;
  maxLayer: number;
  targetModules: string[];
  warnings: string[];
  modules: { layer: number; module: string; rank: number; scale: number }[];
}
/** A PEFT LoRA loaded on a model (referred to by id; unloading it is refused while a session uses it). */
export interface NativeAdapter {
  readonly id: number;
  /** Throws ERR_NLA_ADAPTER_NOT_LOADED once unloaded. */
  info(): NativeAdapterInfo;
}

/** The AR's linear head in the engine (the arrays given to createHead are copied). */
export interface NativeHead {
  apply(h: Float32Array): Float32Array;
}

export interface NativeModelInfo {
  path: string;
  ggufVersion: number;
  tensorCount: number;
  fileSize: number;
  name: string;
  architecture: string;
  nLayer: number;
  nEmbd: number;
  nVocab: number;
  nCtxTrain: number;
  headDimFull: number;
  headDimSwa: number;
  slidingWindow: number;
  nKvShared: number;
  pleDim: number;
  slidingLayers: boolean[];
  feedForward: number[];
  heads: number[];
  weightTypes: string;
  backend: string;
  backendDescription: string;
  threads: number;
  nVocabTokenizer: number;
  bos: number;
  eos: number;
  /** final_logit_softcapping (0: none). */
  finalSoftcap: number;
}

export type GeluName = 'exact' | 'fp16-table';

/** One captured block output (layer ≥ 0), a named intermediate (layer -1, `name`), or the logits (name 'logits'). */
export interface NativeCapture {
  layer: number;
  rows: number;
  firstRow: number;
  cols: number;
  data: Float32Array;
  name?: string;
}

export interface EmbeddingOverride {
  /** Index into the prompt's (or the step's) tokens. */
  position: number;
  /** n_embd values in the embedding's scaled units. */
  values: Float32Array;
}

export interface NativeForwardOptions {
  lastLayer?: number;
  captureLayers?: number[];
  allTokens?: boolean;
  adapter?: NativeAdapter;
  overrides?: EmbeddingOverride[][];
  gelu?: GeluName;
  /** llama.cpp debug names to observe ('attn_norm-0', 'l_out-3', 'result_output', ...). */
  observe?: string[];
  /** Also the LM head's logits for the rows read. */
  logits?: boolean;
  /** Batching budget: prompts share passes up to this many tokens; a longer prompt is cut into chunks. */
  maxPassTokens?: number;
}

export interface NativeHiddenStatesOptions {
  layer?: number;
  adapter?: NativeAdapter;
  allTokens?: boolean;
  gelu?: GeluName;
  maxPassTokens?: number;
}

export interface NativeReconstructOptions {
  layer?: number;
  adapter?: NativeAdapter;
  head: NativeHead;
  gelu?: GeluName;
  maxPassTokens?: number;
}

export interface NativeHiddenState {
  firstRow: number;
  rows: number;
  /** rows × n_embd */
  data: Float32Array;
}

export interface NativeStepInput {
  seq: number;
  tokens: Int32Array;
  overrides?: EmbeddingOverride[];
  read?: 'none' | 'last' | 'all';
  logits?: boolean;
}

export interface NativeStepOutput {
  firstRow: number;
  rows: number;
  /** One per capture layer: rows × n_embd. */
  hidden: Float32Array[];
  /** rows × n_vocab when asked. */
  logits?: Float32Array;
}

/** Requests shared by a model (on a fresh session each) and a session. Strings are tokenized in the job. */
export interface NativeRequests {
  hiddenStates(prompts: (string | Int32Array)[], options: NativeHiddenStatesOptions, abortFlag?: Int32Array): Promise<NativeHiddenState[]>;
  reconstruct(prompts: (string | Int32Array)[], options: NativeReconstructOptions, abortFlag?: Int32Array): Promise<Float32Array[]>;
}

export interface NativeVerbalizerSpec {
  /** The AV prompt's ids (BOS first). */
  prompt: Int32Array;
  marker: { token: number; left: number; right: number };
  adapter?: NativeAdapter;
  /** Activations are scaled to this L2 norm before injection (0: as given). */
  injectionNorm: number;
  /** End-of-generation ids. */
  eog: Int32Array;
}

export interface NativeGenerateOptions {
  maxTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  stop?: string[];
}

export interface NativeGeneration {
  tokens: Int32Array;
  finish: 'eos' | 'length' | 'stop';
}

/** The AV on a session: the prompt before the marker is run once, each activation continues from it. */
export interface NativeVerbalizer {
  /** Index of the injection site in the prompt. */
  readonly site: number;
  /** onToken(item, token) is called for each generated token as it comes (not after the promise settles, in order per item). */
  generate(activations: Float32Array[], options: NativeGenerateOptions, onToken?: (item: number, token: number) => void, abortFlag?: Int32Array): Promise<NativeGeneration[]>;
  close(): void;
}

/** One caller's state on a model: sequences with KV caches, decoded step by step. */
export interface NativeSession extends NativeRequests {
  /** Throws ERR_NLA_INJECTION when the prompt has no unique injection site. */
  createVerbalizer(spec: NativeVerbalizerSpec): NativeVerbalizer;
  addSequence(adapter?: NativeAdapter | null): number;
  /** Later steps on the sequence reject with ERR_NLA_SEQUENCE_FINISHED. */
  removeSequence(seq: number): void;
  nPast(seq: number): number;
  sequences(): number[];
  run(inputs: NativeStepInput[], options?: { lastLayer?: number; captureLayers?: number[]; gelu?: GeluName }, abortFlag?: Int32Array): Promise<NativeStepOutput[]>;
  kvBytes(): number;
  close(): void;
}

export interface NativeModel extends NativeRequests {
  info(): NativeModelInfo;
  tokenize(text: string, addBos: boolean, parseSpecial: boolean): Int32Array;
  decode(ids: Int32Array, renderSpecial: boolean): string;
  loadAdapter(dir: string): Promise<NativeAdapter>;
  /** Throws ERR_NLA_ADAPTER_IN_USE while a session's sequence uses it. */
  unloadAdapter(adapter: NativeAdapter): void;
  forward(prompts: Int32Array[], options: NativeForwardOptions, abortFlag?: Int32Array): Promise<NativeCapture[][]>;
  createSession(options?: { maxTokens?: number }): NativeSession;
  /** Reads ahead (large sequential reads) the weights a pass through blocks 0..lastLayer reads; resolves to the bytes. */
  prefetch(lastLayer: number): Promise<number>;
  close(): void;
}

export interface NativeTokenizer {
  encode(text: string, addBos: boolean, parseSpecial: boolean): Int32Array;
  decode(ids: Int32Array, renderSpecial: boolean): string;
  info(): { nVocab: number; bos: number; eos: number };
}

export interface NativeBinding {
  variant: 'cpu' | 'cuda';
  openModel(path: string, options: { threads?: number; device?: 'cpu' | 'cuda'; gelu?: GeluName }): Promise<NativeModel>;
  createHead(weight: Float32Array, bias: Float32Array, inDim: number, outDim: number): NativeHead;
  openTokenizer(path: string): Promise<NativeTokenizer>;
  readSafetensors(
    path: string,
    kind: 'head' | 'adapter',
  ): Promise<{ metadata: Record<string, string>; tensors: Record<string, { dtype: string; shape: number[]; data: Float32Array }> }>;
  cudaDeviceCount(): number;
  /** A few CUDA kernels on device 0 against the CPU reference (CPU builds: ok false). */
  cudaSelfTest(): { ok: boolean; error?: string };
  cpuKernels(): string;
}

export interface LoadedBinding {
  binding: NativeBinding;
  backend: 'cpu' | 'cuda';
  /** Why this variant was chosen (e.g. why CUDA was not used). */
  reasons: string[];
}

const ROOT = path.resolve(__dirname, '..');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;

let cpuCache: NativeBinding | undefined;
let cudaCache: { binding?: NativeBinding; error?: string; probe?: CudaProbe } | undefined;

/*
 * Realm safety. The addon creates its typed arrays (token ids, captured states, safetensors data) with the
 * constructors of the context it was loaded in, which is not the caller's when nla-ar runs inside a vm
 * context (jest, notebooks). There `ids instanceof Int32Array` is false and every instanceof check in this
 * package (LinearHead.apply, roundTrip, option schemas) rejected the engine's own output: reconstruct() failed
 * with ERR_NLA_INVALID_ARG under jest. The wrappers below re-view each returned array with this realm's
 * constructor (same memory, no copy) before anything else sees it.
 */
function localF32(a: Float32Array): Float32Array {
  if (a instanceof Float32Array) return a;
  const v = a as { buffer: ArrayBufferLike; byteOffset: number; length: number };
  return new Float32Array(v.buffer, v.byteOffset, v.length);
}
function localI32(a: Int32Array): Int32Array {
  if (a instanceof Int32Array) return a;
  const v = a as { buffer: ArrayBufferLike; byteOffset: number; length: number };
  return new Int32Array(v.buffer, v.byteOffset, v.length);
}

/** Overrides methods on a native object instance, keeping `this` bound to the real (wrapped) object. */
function patchMethods<T extends object>(obj: T, overrides: Partial<T>): T {
  for (const [k, v] of Object.entries(overrides)) Object.defineProperty(obj, k, { value: v, configurable: true, writable: true });
  return obj;
}

function realmSafeRequests<T extends NativeRequests>(o: T): Partial<NativeRequests> {
  const hiddenStates = o.hiddenStates;
  const reconstruct = o.reconstruct;
  return {
    hiddenStates: async (prompts, options, abortFlag) => {
      const r = await hiddenStates.call(o, prompts, options, abortFlag);
      for (const h of r) h.data = localF32(h.data);
      return r;
    },
    reconstruct: async (prompts, options, abortFlag) => (await reconstruct.call(o, prompts, options, abortFlag)).map(localF32),
  };
}

function realmSafeVerbalizer(v: NativeVerbalizer): NativeVerbalizer {
  const generate = v.generate;
  return patchMethods(v, {
    generate: async (acts: Float32Array[], o: NativeGenerateOptions, onToken?: (item: number, token: number) => void, flag?: Int32Array) => {
      const r = await generate.call(v, acts, o, onToken, flag);
      for (const g of r) g.tokens = localI32(g.tokens);
      return r;
    },
  });
}

function realmSafeSession(sess: NativeSession): NativeSession {
  const run = sess.run;
  const createVerbalizer = sess.createVerbalizer;
  return patchMethods(sess, {
    createVerbalizer: (spec: NativeVerbalizerSpec) => realmSafeVerbalizer(createVerbalizer.call(sess, spec)),
    ...realmSafeRequests(sess),
    run: async (inputs: NativeStepInput[], options?: { lastLayer?: number; captureLayers?: number[]; gelu?: GeluName }, abortFlag?: Int32Array) => {
      const outs = await run.call(sess, inputs, options, abortFlag);
      for (const o of outs) {
        o.hidden = o.hidden.map(localF32);
        if (o.logits) o.logits = localF32(o.logits);
      }
      return outs;
    },
  });
}

function realmSafeModel(m: NativeModel): NativeModel {
  const tokenize = m.tokenize;
  const forward = m.forward;
  const createSession = m.createSession;
  return patchMethods(m, {
    ...realmSafeRequests(m),
    tokenize: (text: string, addBos: boolean, parseSpecial: boolean) => localI32(tokenize.call(m, text, addBos, parseSpecial)),
    forward: async (prompts: Int32Array[], options: NativeForwardOptions, abortFlag?: Int32Array) => {
      const caps = await forward.call(m, prompts, options, abortFlag);
      for (const perPrompt of caps) for (const c of perPrompt) c.data = localF32(c.data);
      return caps;
    },
    createSession: (options?: { maxTokens?: number }) => realmSafeSession(createSession.call(m, options)),
  });
}

function realmSafeTokenizer(t: NativeTokenizer): NativeTokenizer {
  const encode = t.encode;
  return patchMethods(t, {
    encode: (text: string, addBos: boolean, parseSpecial: boolean) => localI32(encode.call(t, text, addBos, parseSpecial)),
  });
}

function realmSafe(raw: NativeBinding): NativeBinding {
  const b = Object.create(raw) as NativeBinding;
  b.openModel = async (p, o) => realmSafeModel(await raw.openModel(p, o));
  b.openTokenizer = async (p) => realmSafeTokenizer(await raw.openTokenizer(p));
  b.createHead = (w, bias, inDim, outDim) => {
    const h = raw.createHead(w, bias, inDim, outDim);
    const apply = h.apply;
    return patchMethods(h, { apply: (x: Float32Array) => localF32(apply.call(h, x)) });
  };
  b.readSafetensors = async (p, kind) => {
    const r = await raw.readSafetensors(p, kind);
    for (const t of Object.values(r.tensors)) t.data = localF32(t.data);
    return r;
  };
  return b;
}

/** Folder whose build/Release or prebuilds/<platform>-<arch> holds the CUDA variant; NLA_AR_CUDA_DIR overrides it
 *  (to try another build, or in tests a deliberately broken one). */
export function cudaVariantDir(): string {
  const o = process.env.NLA_AR_CUDA_DIR;
  return o ? path.resolve(o) : path.join(ROOT, 'variants', 'cuda');
}

/** What node-gyp-build looks at under `dir`, for error messages and `nla-ar inspect`. */
export function describeSearch(dir: string): string[] {
  const tag = `${process.platform}-${process.arch}`;
  const where = [path.join(dir, 'build', 'Release'), path.join(dir, 'build', 'Debug'), path.join(dir, 'prebuilds', tag)];
  return where.map((d) => {
    let files: string[];
    try {
      files = fs.readdirSync(d).filter((f) => f.endsWith('.node'));
    } catch {
      return `${d}: absent`;
    }
    return `${d}: ${files.length ? files.join(', ') : 'no .node file'}`;
  });
}

/** The .node file node-gyp-build would load from `dir`, or the reason there is none. */
export function resolveVariant(dir: string): { file?: string; error?: string } {
  try {
    return { file: (nodeGypBuild as unknown as { resolve(d: string): string }).resolve(dir) };
  } catch (e) {
    return { error: (e as Error).message.split('\n')[0] };
  }
}

const CPU_LOAD_HELP = [
  'What to do:',
  '  npm rebuild nla-ar                        reruns the install script, which builds the CPU variant from source when',
  '                                            no prebuild fits this platform (needs CMake >= 3.25 and a C++17 compiler)',
  '  npm install nla-ar --build-from-source    always builds from source',
  '  If the install ran with NLA_AR_SKIP_BUILD=1, with --ignore-scripts, or npm did not run the install script',
  '  (npm 11 asks: `npm install-scripts approve nla-ar`), nothing was built: rerun it without those.',
  '  In a git checkout: npm run build:native.   `npx nla-ar inspect` shows what was found.',
].join('\n');

function loadCpu(): NativeBinding {
  if (!cpuCache) {
    try {
      cpuCache = realmSafe(nodeGypBuild(ROOT) as NativeBinding);
    } catch (e) {
      const tried = [
        ...(process.env.NLA_AR_PREBUILD ? [`NLA_AR_PREBUILD=${process.env.NLA_AR_PREBUILD}`] : []),
        ...describeSearch(ROOT),
      ];
      throw new NlaError(
        'ERR_NLA_NATIVE_LOAD',
        `could not load the nla-ar native binary (CPU variant, ${process.platform}-${process.arch}, Node ${process.version}, ` +
          `N-API ${process.versions.napi}): ${(e as Error).message.split('\n')[0]}\nTried:\n${tried.map((t) => `  ${t}`).join('\n')}\n${CPU_LOAD_HELP}`,
        { cause: e },
      );
    }
  }
  return cpuCache;
}

/** The outcome of loading the CUDA variant in a child process. */
export interface CudaProbe {
  /** The binary loaded in the child and reported at least one device. */
  ok: boolean;
  dir: string;
  /** The .node file that was tried. */
  file?: string;
  /** > 0: devices; <= 0: minus the cudaError (35: no or too old driver, 100: no device). */
  deviceCount?: number;
  /** Why the variant cannot be used (absent, failed to load, crashed, no device). */
  error?: string;
  /** The child process died (signal or abnormal exit) instead of answering: the host would have crashed too. */
  crashed?: boolean;
  ms: number;
}

// Runs in the child: resolve, load, count devices, print one JSON line. Anything that kills it (a driver fault,
// a bad binary, an abort in a static initializer) kills only the child.
const PROBE_SCRIPT = `
const [ngb, dir] = process.argv.slice(1);
const out = (o) => process.stdout.write('\\n' + JSON.stringify(o) + '\\n');
let file;
try { file = require(ngb).resolve(dir); } catch (e) { out({ stage: 'resolve', error: String(e.message).split('\\n')[0] }); process.exit(0); }
let b;
try { b = require(file); } catch (e) { out({ stage: 'load', file, error: String(e.message).split('\\n')[0] }); process.exit(0); }
if (b.variant !== 'cuda') { out({ stage: 'load', file, error: 'not the CUDA variant (variant = ' + b.variant + ')' }); process.exit(0); }
const n = b.cudaDeviceCount();
// A few of this binary's kernels on device 0, checked against the CPU reference: a driver that lists the device
// but cannot run this binary's code (wrong architecture, broken JIT) is caught here too, in the child.
const kernel = n > 0 && typeof b.cudaSelfTest === 'function' ? b.cudaSelfTest() : undefined;
out({ stage: 'count', file, deviceCount: n, kernel });
`;

/** Loads the CUDA variant in a child process and reports what happened (cached per folder). */
export function probeCuda(dir: string = cudaVariantDir(), timeoutMs = 60_000): CudaProbe {
  const cached = probeCache.get(dir);
  if (cached) return cached;
  const t0 = Date.now();
  const done = (p: Omit<CudaProbe, 'dir' | 'ms'>): CudaProbe => {
    const r = { ...p, dir, ms: Date.now() - t0 };
    probeCache.set(dir, r);
    return r;
  };
  const found = resolveVariant(dir);
  if (!found.file) return done({ ok: false, error: `no CUDA binary (${found.error})` });
  const r = spawnSync(process.execPath, ['-e', PROBE_SCRIPT, require.resolve('node-gyp-build'), dir], {
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    windowsHide: true,
  });
  const line = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  let msg: { stage?: string; file?: string; error?: string; deviceCount?: number; kernel?: { ok: boolean; error?: string } } | undefined;
  try {
    msg = line.startsWith('{') ? JSON.parse(line) : undefined;
  } catch {
    msg = undefined;
  }
  if (r.error) return done({ ok: false, file: found.file, error: `the probe process failed (${r.error.message})`, crashed: (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT' });
  if (!msg || r.status !== 0) {
    const how = r.signal ? `was killed by ${r.signal}` : `exited with status ${r.status}`;
    const err = (r.stderr ?? '').trim().split('\n').filter(Boolean).slice(-1)[0];
    return done({ ok: false, file: found.file, crashed: true, error: `loading ${found.file} crashed the probe process (it ${how}${err ? `: ${err}` : ''})` });
  }
  if (msg.error) return done({ ok: false, file: msg.file ?? found.file, error: `${msg.file ?? found.file} does not load (${msg.error})` });
  const n = Number(msg.deviceCount);
  if (!(n > 0)) return done({ ok: false, file: msg.file, deviceCount: n, error: `no usable device (cudaError ${-n})` });
  if (msg.kernel && !msg.kernel.ok) return done({ ok: false, file: msg.file, deviceCount: n, error: `the device is listed but this binary's kernels do not run on it (${msg.kernel.error})` });
  return done({ ok: true, file: msg.file, deviceCount: n });
}
const probeCache = new Map<string, CudaProbe>();

function loadCuda(): { binding?: NativeBinding; error?: string; probe?: CudaProbe } {
  if (!cudaCache) {
    if (process.platform !== 'linux') cudaCache = { error: `no CUDA build for ${process.platform}` };
    else {
      // The CUDA binary (and the driver it starts) is tried in a child process first: if it crashes, only the
      // child dies, and the host falls back to the CPU variant (node-llama-cpp does the same).
      const probe = probeCuda();
      if (!probe.ok) cudaCache = { error: probe.error, probe };
      else {
        try {
          cudaCache = { binding: realmSafe(nodeGypBuild(probe.dir) as NativeBinding), probe };
        } catch (e) {
          cudaCache = { error: `${probe.file} passed the probe but does not load here (${(e as Error).message.split('\n')[0]})`, probe };
        }
      }
    }
  }
  return cudaCache;
}

const CUDA_HELP =
  'To use the GPU: an NVIDIA driver >= 580 (CUDA 13) must be installed and working (nvidia-smi), and the CUDA variant present: ' +
  'it ships prebuilt for linux-x64, or build it with `NLA_AR_BUILD_CUDA=1 npm rebuild nla-ar` (needs nvcc). `npx nla-ar inspect` shows the probe.';

/** Picks the binding for a requested device. */
export function loadNative(requested: Device = 'auto'): LoadedBinding {
  const reasons: string[] = [];
  if (requested !== 'cpu') {
    const cuda = loadCuda();
    if (cuda.binding) {
      const n = cuda.binding.cudaDeviceCount();
      if (n > 0) return { binding: cuda.binding, backend: 'cuda', reasons: [`cuda: ${n} device(s)`] };
      reasons.push(`cuda: no usable device (cudaError ${-n})`);
    } else {
      reasons.push(`cuda: ${cuda.error}`);
    }
    if (requested === 'cuda') throw new NlaError('ERR_NLA_NO_CUDA', `device 'cuda' was requested but ${reasons.join('; ')}. ${CUDA_HELP}`);
  } else {
    reasons.push('cpu requested');
  }
  return { binding: loadCpu(), backend: 'cpu', reasons };
}

/** Platform, variants found, the CUDA probe and the CPU kernels: what `nla-ar inspect` prints. */
export interface NativeReport {
  platform: { os: string; arch: string; libc: string; node: string; napi: string | undefined };
  cpu: { dir: string; searched: string[]; file?: string; error?: string; kernels?: string };
  cuda: { dir: string; searched: string[]; probe: CudaProbe | null };
  auto: { backend?: 'cpu' | 'cuda'; reasons?: string[]; error?: string };
  env: Record<string, string>;
}

export function nativeReport(): NativeReport {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  const libc = process.platform !== 'linux' ? '-' : header?.glibcVersionRuntime ? `glibc ${header.glibcVersionRuntime}` : 'musl (no glibc)';
  const cpuFile = resolveVariant(ROOT);
  const cpu: NativeReport['cpu'] = { dir: ROOT, searched: describeSearch(ROOT), ...cpuFile };
  try {
    cpu.kernels = loadCpu().cpuKernels();
  } catch (e) {
    cpu.error = (e as Error).message.split('\n')[0];
  }
  const dir = cudaVariantDir();
  const cuda = { dir, searched: describeSearch(dir), probe: process.platform === 'linux' ? probeCuda(dir) : null };
  let auto: NativeReport['auto'];
  try {
    const r = loadNative('auto');
    auto = { backend: r.backend, reasons: r.reasons };
  } catch (e) {
    auto = { error: (e as Error).message.split('\n')[0] };
  }
  const env: Record<string, string> = {};
  for (const k of ['NLA_AR_CUDA_DIR', 'NLA_AR_PREBUILD', 'PREBUILDS_ONLY', 'UV_THREADPOOL_SIZE', 'CUDA_VISIBLE_DEVICES']) if (process.env[k] !== undefined) env[k] = process.env[k]!;
  return {
    platform: { os: process.platform, arch: process.arch, libc, node: process.version, napi: process.versions.napi },
    cpu,
    cuda,
    auto,
    env,
  };
}

/** Turns an error thrown by the binding into an NlaError (the binding sets `code`). */
export function toNlaError(e: unknown): NlaError {
  if (e instanceof NlaError) return e;
  const err = e as { code?: unknown; message?: string };
  const code = typeof err?.code === 'string' ? err.code : 'ERR_NLA_INTERNAL';
  return new NlaError(isNlaErrorCode(code) ? code : 'ERR_NLA_INTERNAL', err?.message ?? String(e), { cause: e });
}
