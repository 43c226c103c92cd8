/**
 * The AR's final linear head: `activation = W · h + b`, W of shape [outDim, inDim] (nn.Linear layout).
 *
 * Sources:
 * - `linear_head.pt` from Hugging Face (torch.save of `nn.Linear.state_dict(keep_vars=True)`), read with
 *   the restricted torch reader (no pickle code is ever executed);
 * - arrays (`fromArrays`), and an already-parsed safetensors pair (`fromSafetensors`).
 *
 * Accepted state_dicts hold exactly two tensors: `weight` and `bias`, or `<prefix>.weight` and
 * `<prefix>.bias` with one common prefix (e.g. `head.`/`linear.`). Tensors may be plain tensors or
 * nn.Parameters; float32 is the real file's dtype, and float16/bfloat16/float64 files are accepted and
 * converted to float32 (exactly for the 16-bit types; float64 is rounded to nearest).
 */
import { constants as fsConstants } from 'node:fs';
import { open } from 'node:fs/promises';
import * as path from 'node:path';
import { NlaError } from './errors';
import { openTorchStateDict, type TorchReadLimits } from './formats/torch';
// A cycle (the worker runs this module's readers); both sides only use the other's exports at call time.
import { parseTorchHeadOffThread } from './head-worker';
import { ActivationVector } from './vector';

/** Upper bound for a head file read into memory when its dims are not known (the real one is 9.4 MB). */
const MAX_HEAD_FILE_BYTES = 1 << 30;
/** A head's state_dict pickle is a few hundred bytes. */
const MAX_HEAD_PICKLE_BYTES = 1 << 20;
/** Without expected dims: the largest head storage read (an 8192 x 8192 float32 weight). */
const MAX_HEAD_STORAGE_BYTES = 256 * 2 ** 20;
/** What a head file may hold beyond its tensors' bytes (pickle, records, zip headers). */
const HEAD_FILE_OVERHEAD_BYTES = 16 * 2 ** 20;

export interface LinearHeadDims {
  readonly inDim: number;
  readonly outDim: number;
}

/**
 * What the caller knows a head must be (e.g. the model's d_model). Sizes in the file are checked against it
 * before any tensor data is read, so a file cannot make the reader allocate more than such a head needs.
 */
export interface HeadExpectation {
  readonly inDim?: number;
  readonly outDim?: number;
}

/** Largest number of bytes a head file of these dims can need (float64 is the widest dtype read). */
export function maxHeadFileBytes(expect?: HeadExpectation): number {
  if (expect?.inDim === undefined || expect.outDim === undefined) return MAX_HEAD_FILE_BYTES;
  return Math.min(MAX_HEAD_FILE_BYTES, (expect.inDim * expect.outDim + expect.outDim) * 8 + HEAD_FILE_OVERHEAD_BYTES);
}

function headReadLimits(expect?: HeadExpectation): TorchReadLimits {
  const values = expect?.inDim !== undefined && expect.outDim !== undefined ? expect.inDim * expect.outDim + expect.outDim : undefined;
  return {
    maxPickleBytes: MAX_HEAD_PICKLE_BYTES,
    maxTensors: 64,
    maxStorageBytes: values === undefined ? MAX_HEAD_STORAGE_BYTES : values * 8,
    maxElements: values ?? MAX_HEAD_STORAGE_BYTES / 4,
  };
}

/**
 * Reads a whole regular file. Opened with O_NONBLOCK and checked with fstat before the first read: a FIFO (or
 * a device) given as a head would otherwise block a libuv thread, and the promise, forever.
 */
export async function readRegularFile(filePath: string, maxBytes: number, tooLarge: (size: number) => NlaError): Promise<ArrayBuffer> {
  let fh;
  try {
    fh = await open(filePath, fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0));
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new NlaError('ERR_NLA_IO', `cannot read linear head ${filePath}: ${reason}`, { cause: err });
  }
  try {
    const info = await fh.stat();
    if (!info.isFile()) throw new NlaError('ERR_NLA_IO', `${filePath}: not a regular file`);
    if (info.size > maxBytes) throw tooLarge(info.size);
    const bytes = new ArrayBuffer(info.size); // its own buffer, so it can be transferred to a worker
    let done = 0;
    while (done < info.size) {
      const { bytesRead } = await fh.read(new Uint8Array(bytes, done), 0, info.size - done, done);
      if (bytesRead === 0) throw new NlaError('ERR_NLA_IO', `${filePath}: the file shrank while it was read`);
      done += bytesRead;
    }
    return bytes;
  } catch (err) {
    if (err instanceof NlaError) throw err;
    const reason = err instanceof Error ? err.message : String(err);
    throw new NlaError('ERR_NLA_IO', `cannot read linear head ${filePath}: ${reason}`, { cause: err });
  } finally {
    await fh.close();
  }
}

/** A tensor already decoded to float32 (row-major), e.g. by the native safetensors reader. */
export interface ParsedHeadTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export class LinearHead {
  /** [outDim * inDim], row-major [out, in]. Owned by this head: do not modify. */
  readonly weight: Float32Array;
  /** [outDim]. Owned by this head: do not modify. */
  readonly bias: Float32Array;
  readonly inDim: number;
  readonly outDim: number;

  /** Takes ownership of the arrays; validation is the factories' job (or the worker's, for fromTorchFile). */
  private constructor(weight: Float32Array, bias: Float32Array, dims: LinearHeadDims) {
    this.weight = weight;
    this.bias = bias;
    this.inDim = dims.inDim;
    this.outDim = dims.outDim;
  }

  /**
   * `W h + b`. Inputs are taken as float32 (number[] values are rounded to float32 first), each product is
   * exact in double, the sum runs in double in index order, and the result is rounded once to float32, so
   * the output is deterministic and independent of the platform.
   */
  apply(h: Float32Array | readonly number[]): Float32Array {
    if (!(h instanceof Float32Array) && !Array.isArray(h)) {
      throw new NlaError('ERR_NLA_INVALID_ARG', 'LinearHead.apply: h must be a Float32Array or an array of numbers');
    }
    if (h.length !== this.inDim) {
      throw new NlaError('ERR_NLA_INVALID_ARG', `LinearHead.apply: h has ${h.length} values, the head expects ${this.inDim}`);
    }
    const x = new Float64Array(this.inDim);
    for (let i = 0; i < this.inDim; i++) {
      const v = h[i];
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        throw new NlaError('ERR_NLA_INVALID_ARG', `LinearHead.apply: h[${i}] is ${String(v)}, not a finite number`);
      }
      x[i] = Math.fround(v);
      if (!Number.isFinite(x[i]!)) {
        throw new NlaError('ERR_NLA_INVALID_ARG', `LinearHead.apply: h[${i}] = ${v} overflows float32`);
      }
    }
    const out = new ActivationVector(this.outDim); // a Float32Array that prints compactly (vector.ts)
    const w = this.weight;
    const n = this.inDim;
    for (let o = 0; o < this.outDim; o++) {
      let acc = 0;
      const row = o * n;
      for (let i = 0; i < n; i++) acc += w[row + i]! * x[i]!;
      out[o] = acc + this.bias[o]!;
    }
    return out;
  }

  /**
   * Reads a torch.save'd head (`linear_head.pt`). I/O failures are ERR_NLA_IO; bad contents ERR_NLA_HEAD_INVALID.
   * The file is parsed on a worker thread (the unpickler is JavaScript: on the caller's thread it would hold the
   * event loop for as long as a hostile pickle makes it run). `expect` bounds what the file may declare.
   */
  static async fromTorchFile(filePath: string, expect?: HeadExpectation): Promise<LinearHead> {
    if (typeof filePath !== 'string' || filePath.length === 0) {
      throw new NlaError('ERR_NLA_INVALID_ARG', 'LinearHead.fromTorchFile: path must be a non-empty string');
    }
    checkExpectation(expect);
    const bytes = await readRegularFile(filePath, maxHeadFileBytes(expect), (size) =>
      new NlaError('ERR_NLA_HEAD_INVALID', `${filePath}: ${size} bytes is far too large for a linear head${dimsText(expect)}`),
    );
    const parsed = await parseTorchHeadOffThread(bytes, path.basename(filePath), expect);
    return new LinearHead(parsed.weight, parsed.bias, parsed);
  }

  /**
   * Parses the bytes of a torch.save'd head on the calling thread. `name` is used in messages; `expect` bounds
   * what the file may declare (checked before any tensor data is read).
   */
  static fromTorchBuffer(buf: Buffer, name = 'linear_head.pt', expect?: HeadExpectation): LinearHead {
    checkExpectation(expect);
    const refs = openTorchStateDict(buf, { fileName: name, limits: headReadLimits(expect) });
    const { weight, bias } = pickHeadTensors(refs, name);
    checkHeadShapes(weight.shape, bias.shape, name, 'ERR_NLA_HEAD_INVALID', expect);
    const w = weight.read();
    const b = bias.read();
    return LinearHead.validated(w.shape, w.data, b.shape, b.data, name, 'ERR_NLA_HEAD_INVALID', false);
  }

  /** Builds a head from arrays, which are copied (never kept or modified). */
  static fromArrays(
    weight: Float32Array | readonly number[],
    bias: Float32Array | readonly number[],
    dims: LinearHeadDims,
  ): LinearHead {
    if (dims === null || typeof dims !== 'object') {
      throw new NlaError('ERR_NLA_INVALID_ARG', 'LinearHead.fromArrays: dims {inDim, outDim} is required');
    }
    const { inDim, outDim } = dims;
    for (const [k, v] of [['inDim', inDim], ['outDim', outDim]] as const) {
      if (!Number.isSafeInteger(v) || v <= 0) throw new NlaError('ERR_NLA_INVALID_ARG', `LinearHead.fromArrays: ${k} must be a positive integer, got ${String(v)}`);
    }
    for (const [k, v] of [['weight', weight], ['bias', bias]] as const) {
      if (!(v instanceof Float32Array) && !Array.isArray(v)) {
        throw new NlaError('ERR_NLA_INVALID_ARG', `LinearHead.fromArrays: ${k} must be a Float32Array or an array of numbers`);
      }
    }
    return LinearHead.validated([outDim, inDim], Float32Array.from(weight), [bias.length], Float32Array.from(bias), 'LinearHead.fromArrays', 'ERR_NLA_INVALID_ARG', false);
  }

  /**
   * ---- Safetensors entry point (for the native reader) ----
   * Takes the tensors the native safetensors reader has already decoded to float32, keyed by name, with the
   * same key rules as the torch file (`weight`/`bias` or one `<prefix>.weight`/`<prefix>.bias` pair, nothing
   * else): weight [out, in], bias [out]. Validates shapes and values and copies the data.
   */
  static fromSafetensors(tensors: Readonly<Record<string, ParsedHeadTensor>>, name = 'linear head safetensors', expect?: HeadExpectation): LinearHead {
    if (tensors === null || typeof tensors !== 'object') {
      throw new NlaError('ERR_NLA_HEAD_INVALID', `${name}: expected an object of tensors {weight, bias}`);
    }
    for (const [key, t] of Object.entries(tensors)) {
      if (!isParsedTensor(t)) throw new NlaError('ERR_NLA_HEAD_INVALID', `${name}: tensor '${key}' must be {shape: number[], data: Float32Array}`);
    }
    const { weight, bias } = pickHeadTensors(new Map(Object.entries(tensors)), name);
    checkHeadShapes(weight.shape, bias.shape, name, 'ERR_NLA_HEAD_INVALID', expect);
    return LinearHead.validated(weight.shape, weight.data, bias.shape, bias.data, name, 'ERR_NLA_HEAD_INVALID', true);
  }

  private static validated(
    weightShape: readonly number[],
    weight: Float32Array,
    biasShape: readonly number[],
    bias: Float32Array,
    name: string,
    code: 'ERR_NLA_HEAD_INVALID' | 'ERR_NLA_INVALID_ARG',
    copy: boolean,
  ): LinearHead {
    const fail: (message: string) => never = (message) => {
      throw new NlaError(code, `${name}: ${message}`);
    };
    checkHeadShapes(weightShape, biasShape, name, code);
    const [outDim, inDim] = weightShape as [number, number];
    if (weight.length !== outDim * inDim) fail(`weight has ${weight.length} values, shape [${outDim}, ${inDim}] needs ${outDim * inDim}`);
    if (bias.length !== outDim) fail(`bias has ${bias.length} values, expected ${outDim}`);
    const badW = firstNonFinite(weight);
    if (badW >= 0) fail(`weight[${Math.floor(badW / inDim)}, ${badW % inDim}] is ${weight[badW]}; the head must be finite`);
    const badB = firstNonFinite(bias);
    if (badB >= 0) fail(`bias[${badB}] is ${bias[badB]}; the head must be finite`);
    return new LinearHead(copy ? weight.slice() : weight, copy ? bias.slice() : bias, { inDim, outDim });
  }
}

/** The shape rules of a head (and, when given, the dims it must have): before any data is read. */
function checkHeadShapes(
  weightShape: readonly number[],
  biasShape: readonly number[],
  name: string,
  code: 'ERR_NLA_HEAD_INVALID' | 'ERR_NLA_INVALID_ARG',
  expect?: HeadExpectation,
): void {
  const fail: (message: string) => never = (message) => {
    throw new NlaError(code, `${name}: ${message}`);
  };
  if (weightShape.length !== 2) fail(`weight must be 2-D [out, in], got shape [${weightShape.join(', ')}]`);
  if (biasShape.length !== 1) fail(`bias must be 1-D [out], got shape [${biasShape.join(', ')}]`);
  const [outDim, inDim] = weightShape as [number, number];
  if (!(outDim > 0 && inDim > 0)) fail(`weight shape [${weightShape.join(', ')}] is empty`);
  if (biasShape[0] !== outDim) fail(`bias has ${biasShape[0]} values but weight has ${outDim} output rows`);
  if (expect?.inDim !== undefined && inDim !== expect.inDim) fail(`the head reads ${inDim} values but the model's d_model is ${expect.inDim}`);
  if (expect?.outDim !== undefined && outDim !== expect.outDim) fail(`the head produces ${outDim} values but ${expect.outDim} are expected (the model's d_model)`);
}

function checkExpectation(expect: HeadExpectation | undefined): void {
  if (expect === undefined) return;
  for (const k of ['inDim', 'outDim'] as const) {
    const v = expect[k];
    if (v !== undefined && (!Number.isSafeInteger(v) || v <= 0 || v > 1 << 20)) {
      throw new NlaError('ERR_NLA_INVALID_ARG', `expected head ${k} must be a positive integer, got ${String(v)}`);
    }
  }
}

function dimsText(expect?: HeadExpectation): string {
  return expect?.inDim !== undefined && expect.outDim !== undefined ? ` of ${expect.outDim} x ${expect.inDim}` : '';
}

function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) {
    const v = a[i]!;
    if (v - v !== 0) return i; // NaN or ±Infinity
  }
  return -1;
}

function isParsedTensor(t: unknown): t is ParsedHeadTensor {
  return (
    typeof t === 'object' && t !== null &&
    Array.isArray((t as ParsedHeadTensor).shape) &&
    (t as ParsedHeadTensor).shape.every((d) => Number.isSafeInteger(d) && d >= 0) &&
    (t as ParsedHeadTensor).data instanceof Float32Array
  );
}

/** `weight`/`bias`, or `<p>.weight`/`<p>.bias` with one common prefix; nothing else in the file. */
function pickHeadTensors<T extends { readonly shape: readonly number[] }>(tensors: ReadonlyMap<string, T>, name: string): { weight: T; bias: T } {
  const keys = [...tensors.keys()];
  const fail: (why: string) => never = (why) => {
    throw new NlaError('ERR_NLA_HEAD_INVALID', `${name}: ${why}; found keys [${keys.map((k) => `'${k}'`).join(', ')}]`);
  };
  if (keys.length !== 2) fail('a linear head state_dict must hold exactly two tensors, weight and bias');
  const w = tensors.get('weight');
  const b = tensors.get('bias');
  if (w !== undefined && b !== undefined) return { weight: w, bias: b };
  const wKey = keys.find((k) => k.endsWith('.weight'));
  const bKey = keys.find((k) => k.endsWith('.bias'));
  if (wKey === undefined || bKey === undefined) fail("expected keys 'weight' and 'bias' (or '<prefix>.weight' and '<prefix>.bias')");
  const prefix = wKey.slice(0, -'.weight'.length);
  if (bKey !== `${prefix}.bias`) fail(`'${wKey}' and '${bKey}' do not share a prefix`);
  return { weight: tensors.get(wKey)!, bias: tensors.get(bKey)! };
}

/** What the Reconstructor needs of a head: a LinearHead, or any object with these members. */
export interface HeadLike {
  readonly inDim: number;
  readonly outDim: number;
  apply(h: Float32Array): Float32Array;
}

function isFloat32Array(x: unknown): x is Float32Array {
  return ArrayBuffer.isView(x) && Object.prototype.toString.call(x) === '[object Float32Array]';
}

/**
 * `head.apply(h)`, checked: it must return a Float32Array of `outDim` finite values (a caller-supplied head is
 * arbitrary code, and an overflowing LinearHead gives infinities). Anything else is ERR_NLA_HEAD_INVALID.
 */
export function applyHead(head: HeadLike, h: Float32Array): Float32Array {
  let out: unknown;
  try {
    out = head.apply(h);
  } catch (err) {
    if (err instanceof NlaError) throw err;
    throw new NlaError('ERR_NLA_HEAD_INVALID', `the head's apply() threw: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (!isFloat32Array(out)) {
    throw new NlaError('ERR_NLA_HEAD_INVALID', `the head's apply() returned ${out === null ? 'null' : typeof out}, not a Float32Array`);
  }
  if (out.length !== head.outDim) {
    throw new NlaError('ERR_NLA_HEAD_INVALID', `the head's apply() returned ${out.length} values but its outDim is ${head.outDim}`);
  }
  const bad = firstNonFinite(out);
  if (bad >= 0) throw new NlaError('ERR_NLA_HEAD_INVALID', `the head's output [${bad}] is ${out[bad]}; its weights overflow float32 for this input`);
  if (out instanceof Float32Array) return out;
  const foreign = out as { buffer: ArrayBufferLike; byteOffset: number; length: number }; // another realm's array
  return new Float32Array(foreign.buffer, foreign.byteOffset, foreign.length);
}

/** Checks a caller-supplied head against the model once, at load: its dims, and apply() of a zero vector. */
export function checkHeadForModel(head: HeadLike, dModel: number): void {
  if (head.inDim !== dModel) {
    throw new NlaError('ERR_NLA_HEAD_INVALID', `the head reads ${String(head.inDim)} values but the model's d_model is ${dModel}`);
  }
  if (!Number.isSafeInteger(head.outDim) || head.outDim <= 0) {
    throw new NlaError('ERR_NLA_HEAD_INVALID', `the head's outDim must be a positive integer, got ${String(head.outDim)}`);
  }
  applyHead(head, new Float32Array(dModel));
}
