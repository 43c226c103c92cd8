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

function loadCpu(): NativeBinding {
  if (!cpuCache) {
    try {
      cpuCache = nodeGypBuild(ROOT) as NativeBinding;
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
        cudaCache = { binding: nodeGypBuild(path.join(ROOT, 'variants', 'cuda')) as NativeBinding };
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
