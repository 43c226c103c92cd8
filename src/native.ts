/**
 * Loads the native binding. Two variants may exist: the CPU build (package root) and
 * the CUDA build (variants/cuda), each as a local build or a shipped prebuild
 * (node-gyp-build decides which). 'auto' uses CUDA when its binary loads and reports a
 * device, otherwise CPU, and records why.
 */
import * as path from 'node:path';
import { NlaError, isNlaErrorCode } from './errors';

export type Device = 'auto' | 'cpu' | 'cuda';

export interface NativeAdapterInfo {
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
export interface NativeAdapter {
  info(): NativeAdapterInfo;
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
}

export interface NativeCapture {
  layer: number;
  rows: number;
  firstRow: number;
  data: Float32Array;
}

export interface NativeForwardOptions {
  lastLayer?: number;
  captureLayers?: number[];
  allTokens?: boolean;
  adapter?: NativeAdapter;
  overrides?: { position: number; values: Float32Array }[][];
  gelu?: 'exact' | 'fp16-table';
}

export interface NativeModel {
  info(): NativeModelInfo;
  tokenize(text: string, addBos: boolean, parseSpecial: boolean): Int32Array;
  decode(ids: Int32Array, renderSpecial: boolean): string;
  loadAdapter(dir: string): Promise<NativeAdapter>;
  forward(prompts: Int32Array[], options: NativeForwardOptions, abortFlag?: Int32Array): Promise<NativeCapture[][]>;
  close(): void;
}

export interface NativeTokenizer {
  encode(text: string, addBos: boolean, parseSpecial: boolean): Int32Array;
  decode(ids: Int32Array, renderSpecial: boolean): string;
  info(): { nVocab: number; bos: number; eos: number };
}

export interface NativeBinding {
  variant: 'cpu' | 'cuda';
  openModel(path: string, options: { threads?: number; device?: 'cpu' | 'cuda'; gelu?: 'exact' | 'fp16-table' }): Promise<NativeModel>;
  openTokenizer(path: string): Promise<NativeTokenizer>;
  readSafetensors(
    path: string,
    kind: 'head' | 'adapter',
  ): Promise<{ metadata: Record<string, string>; tensors: Record<string, { dtype: string; shape: number[]; data: Float32Array }> }>;
  cudaDeviceCount(): number;
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
let cudaCache: { binding?: NativeBinding; error?: string } | undefined;

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

function realmSafeModel(m: NativeModel): NativeModel {
  const tokenize = m.tokenize;
  const forward = m.forward;
  return patchMethods(m, {
    tokenize: (text: string, addBos: boolean, parseSpecial: boolean) => localI32(tokenize.call(m, text, addBos, parseSpecial)),
    forward: async (prompts: Int32Array[], options: NativeForwardOptions, abortFlag?: Int32Array) => {
      const caps = await forward.call(m, prompts, options, abortFlag);
      for (const perPrompt of caps) for (const c of perPrompt) c.data = localF32(c.data);
      return caps;
    },
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
  b.readSafetensors = async (p, kind) => {
    const r = await raw.readSafetensors(p, kind);
    for (const t of Object.values(r.tensors)) t.data = localF32(t.data);
    return r;
  };
  return b;
}

function loadCpu(): NativeBinding {
  if (!cpuCache) {
    try {
      cpuCache = realmSafe(nodeGypBuild(ROOT) as NativeBinding);
    } catch (e) {
      throw new NlaError(
        'ERR_NLA_NATIVE_LOAD',
        `could not load the nla-ar native binary: ${(e as Error).message.split('\n')[0]}. ` +
          'Build it with `npm run build:native` (needs cmake and a C++17 compiler).',
        { cause: e },
      );
    }
  }
  return cpuCache;
}

function loadCuda(): { binding?: NativeBinding; error?: string } {
  if (!cudaCache) {
    if (process.platform !== 'linux') cudaCache = { error: `no CUDA build for ${process.platform}` };
    else {
      try {
        cudaCache = { binding: realmSafe(nodeGypBuild(path.join(ROOT, 'variants', 'cuda')) as NativeBinding) };
      } catch (e) {
        cudaCache = { error: (e as Error).message.split('\n')[0] };
      }
    }
  }
  return cudaCache;
}

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
      reasons.push(`cuda: no CUDA binary (${cuda.error})`);
    }
    if (requested === 'cuda') throw new NlaError('ERR_NLA_NO_CUDA', `device 'cuda' was requested but ${reasons.join('; ')}`);
  } else {
    reasons.push('cpu requested');
  }
  return { binding: loadCpu(), backend: 'cpu', reasons };
}

/** Turns an error thrown by the binding into an NlaError (the binding sets `code`). */
export function toNlaError(e: unknown): NlaError {
  if (e instanceof NlaError) return e;
  const err = e as { code?: unknown; message?: string };
  const code = typeof err?.code === 'string' ? err.code : 'ERR_NLA_INTERNAL';
  return new NlaError(isNlaErrorCode(code) ? code : 'ERR_NLA_INTERNAL', err?.message ?? String(e), { cause: e });
}
