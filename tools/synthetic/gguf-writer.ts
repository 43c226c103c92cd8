/**
 * A streaming GGUF v3 writer (little-endian).
 *
 * File layout: magic "GGUF", u32 version 3, u64 tensor count, u64 kv count, the key/value pairs,
 * the tensor infos (name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset relative to the data
 * section), padding to `general.alignment` (32 unless set), then each tensor's bytes at its offset, each
 * padded to the alignment. Tensors are declared up front and their data is then written in declaration
 * order, in as many chunks as the caller likes, so multi-GB files never sit in memory.
 */
import * as fs from 'node:fs';
import { NlaError } from '../../src/errors';
import { GgmlType, tensorBytes } from './ggml-quants';

export enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

export type GgufScalarTypeName = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'u64' | 'i64' | 'f32' | 'f64' | 'bool' | 'string';

const SCALAR_TYPES: Readonly<Record<GgufScalarTypeName, GgufValueType>> = {
  u8: GgufValueType.UINT8,
  i8: GgufValueType.INT8,
  u16: GgufValueType.UINT16,
  i16: GgufValueType.INT16,
  u32: GgufValueType.UINT32,
  i32: GgufValueType.INT32,
  u64: GgufValueType.UINT64,
  i64: GgufValueType.INT64,
  f32: GgufValueType.FLOAT32,
  f64: GgufValueType.FLOAT64,
  bool: GgufValueType.BOOL,
  string: GgufValueType.STRING,
};

export type GgufScalarValue = number | bigint | boolean | string;

/** One metadata value: a typed scalar or a typed array (arrays of arrays are not needed here). */
export type GgufValue =
  | { readonly type: GgufScalarTypeName; readonly value: GgufScalarValue }
  | { readonly type: 'array'; readonly itemType: GgufScalarTypeName; readonly value: ArrayLike<GgufScalarValue> };

export interface GgufKv {
  readonly key: string;
  readonly value: GgufValue;
}

export interface GgufTensorDecl {
  readonly name: string;
  /** ggml shape, ne[0] innermost. */
  readonly ne: readonly number[];
  readonly type: GgmlType;
}

export interface GgufTensorLayout extends GgufTensorDecl {
  readonly nbytes: number;
  /** Offset relative to the start of the data section. */
  readonly offset: number;
}

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Growable little-endian byte builder for the header. */
class ByteBuilder {
  private buf: Buffer = Buffer.alloc(1 << 16);
  private len = 0;

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const nb = Buffer.alloc(cap);
    this.buf.copy(nb, 0, 0, this.len);
    this.buf = nb;
  }
  u8(v: number): void {
    this.reserve(1);
    this.buf.writeUInt8(v, this.len);
    this.len += 1;
  }
  i8(v: number): void {
    this.reserve(1);
    this.buf.writeInt8(v, this.len);
    this.len += 1;
  }
  u16(v: number): void {
    this.reserve(2);
    this.buf.writeUInt16LE(v, this.len);
    this.len += 2;
  }
  i16(v: number): void {
    this.reserve(2);
    this.buf.writeInt16LE(v, this.len);
    this.len += 2;
  }
  u32(v: number): void {
    this.reserve(4);
    this.buf.writeUInt32LE(v, this.len);
    this.len += 4;
  }
  i32(v: number): void {
    this.reserve(4);
    this.buf.writeInt32LE(v, this.len);
    this.len += 4;
  }
  u64(v: number | bigint): void {
    this.reserve(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.len);
    this.len += 8;
  }
  i64(v: number | bigint): void {
    this.reserve(8);
    this.buf.writeBigInt64LE(BigInt(v), this.len);
    this.len += 8;
  }
  f32(v: number): void {
    this.reserve(4);
    this.buf.writeFloatLE(v, this.len);
    this.len += 4;
  }
  f64(v: number): void {
    this.reserve(8);
    this.buf.writeDoubleLE(v, this.len);
    this.len += 8;
  }
  str(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.u64(n);
    this.reserve(n);
    this.buf.write(s, this.len, 'utf8');
    this.len += n;
  }
  zeros(n: number): void {
    this.reserve(n);
    this.buf.fill(0, this.len, this.len + n);
    this.len += n;
  }
  get length(): number {
    return this.len;
  }
  toBuffer(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

function badValue(key: string, why: string): NlaError {
  return new NlaError('ERR_NLA_INVALID_ARG', `GGUF metadata '${key}': ${why}`);
}

function checkInt(key: string, v: GgufScalarValue, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw badValue(key, `${String(v)} is not an integer in [${lo}, ${hi}]`);
  return v;
}

function checkBig(key: string, v: GgufScalarValue, signed: boolean): bigint {
  if (typeof v !== 'number' && typeof v !== 'bigint') throw badValue(key, `${String(v)} is not a number or bigint`);
  if (typeof v === 'number' && !Number.isInteger(v)) throw badValue(key, `${v} is not an integer`);
  const b = BigInt(v);
  const ok = signed ? b >= -(1n << 63n) && b < 1n << 63n : b >= 0n && b < 1n << 64n;
  if (!ok) throw badValue(key, `${b} is out of range`);
  return b;
}

function writeScalar(bb: ByteBuilder, key: string, type: GgufScalarTypeName, v: GgufScalarValue): void {
  switch (type) {
    case 'u8':
      return bb.u8(checkInt(key, v, 0, 0xff));
    case 'i8':
      return bb.i8(checkInt(key, v, -0x80, 0x7f));
    case 'u16':
      return bb.u16(checkInt(key, v, 0, 0xffff));
    case 'i16':
      return bb.i16(checkInt(key, v, -0x8000, 0x7fff));
    case 'u32':
      return bb.u32(checkInt(key, v, 0, 0xffffffff));
    case 'i32':
      return bb.i32(checkInt(key, v, -0x80000000, 0x7fffffff));
    case 'u64':
      return bb.u64(checkBig(key, v, false));
    case 'i64':
      return bb.i64(checkBig(key, v, true));
    case 'f32':
    case 'f64':
      if (typeof v !== 'number') throw badValue(key, `${String(v)} is not a number`);
      return type === 'f32' ? bb.f32(v) : bb.f64(v);
    case 'bool':
      if (typeof v !== 'boolean') throw badValue(key, `${String(v)} is not a boolean`);
      return bb.u8(v ? 1 : 0);
    case 'string':
      if (typeof v !== 'string') throw badValue(key, `${String(v)} is not a string`);
      return bb.str(v);
    default:
      throw badValue(key, `unknown type '${String(type)}'`);
  }
}

function scalarTypeId(key: string, t: GgufScalarTypeName): GgufValueType {
  const id = SCALAR_TYPES[t];
  if (id === undefined) throw badValue(key, `unknown type '${String(t)}'`);
  return id;
}

/** Serialize one key/value pair (exported for tests and small in-memory files). */
export function encodeKv(kv: GgufKv): Buffer {
  const b = new ByteBuilder();
  writeKv(b, kv);
  return Buffer.from(b.toBuffer());
}

function writeKv(bb: ByteBuilder, kv: GgufKv): void {
  if (typeof kv.key !== 'string' || kv.key.length === 0) throw new NlaError('ERR_NLA_INVALID_ARG', 'GGUF metadata key must be a non-empty string');
  bb.str(kv.key);
  const v = kv.value;
  if (v.type === 'array') {
    bb.u32(GgufValueType.ARRAY);
    bb.u32(scalarTypeId(kv.key, v.itemType));
    const n = v.value.length;
    bb.u64(n);
    for (let i = 0; i < n; i++) writeScalar(bb, kv.key, v.itemType, v.value[i]!);
  } else {
    bb.u32(scalarTypeId(kv.key, v.type));
    writeScalar(bb, kv.key, v.type, v.value);
  }
}

function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

/** Offsets and sizes of the tensors as a GGUF with this alignment would place them. */
export function layoutTensors(tensors: readonly GgufTensorDecl[], alignment = GGUF_DEFAULT_ALIGNMENT): GgufTensorLayout[] {
  let off = 0;
  return tensors.map((t) => {
    const nbytes = tensorBytes(t.type, t.ne);
    const l: GgufTensorLayout = { ...t, ne: [...t.ne], nbytes, offset: off };
    off = alignUp(off + nbytes, alignment);
    return l;
  });
}

export interface GgufWriterOptions {
  /** Data alignment; written as `general.alignment` (u32) only when it differs from 32, unless forced. */
  alignment?: number;
  writeAlignmentKey?: boolean;
}

export interface GgufHeader {
  /** Magic, counts, metadata, tensor infos and the padding up to the data section. */
  readonly bytes: Buffer;
  readonly alignment: number;
  readonly tensors: readonly GgufTensorLayout[];
  /** Offset of the data section in the file (= bytes.length). */
  readonly dataOffset: number;
  /** Size of the complete file. */
  readonly fileSize: number;
  readonly kvCount: number;
}

/** Build the header of a GGUF file (validates keys, names, shapes and alignment). */
export function encodeGgufHeader(kvs: readonly GgufKv[], tensors: readonly GgufTensorDecl[], options: GgufWriterOptions = {}): GgufHeader {
  const alignment = options.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  if (!Number.isInteger(alignment) || alignment <= 0 || alignment % 8 !== 0) {
    throw new NlaError('ERR_NLA_INVALID_ARG', `GGUF alignment must be a positive multiple of 8, got ${alignment}`);
  }
  const seenKeys = new Set<string>();
  const allKvs: GgufKv[] = [];
  for (const kv of kvs) {
    if (seenKeys.has(kv.key)) throw new NlaError('ERR_NLA_INVALID_ARG', `duplicate GGUF metadata key '${kv.key}'`);
    seenKeys.add(kv.key);
    if (kv.key === 'general.alignment') {
      if (kv.value.type !== 'u32' || kv.value.value !== alignment) {
        throw new NlaError('ERR_NLA_INVALID_ARG', `'general.alignment' must be a u32 equal to the writer alignment ${alignment}`);
      }
      continue; // re-added below
    }
    allKvs.push(kv);
  }
  if (alignment !== GGUF_DEFAULT_ALIGNMENT || options.writeAlignmentKey || seenKeys.has('general.alignment')) {
    allKvs.push({ key: 'general.alignment', value: { type: 'u32', value: alignment } });
  }
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new NlaError('ERR_NLA_INVALID_ARG', `duplicate GGUF tensor name '${t.name}'`);
    names.add(t.name);
    if (Buffer.byteLength(t.name, 'utf8') >= 64) throw new NlaError('ERR_NLA_INVALID_ARG', `GGUF tensor name '${t.name}' is longer than ggml's 63-byte limit`);
    if (t.ne.length < 1 || t.ne.length > 4 || t.ne.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new NlaError('ERR_NLA_INVALID_ARG', `GGUF tensor '${t.name}' has an invalid shape [${t.ne.join(', ')}]`);
    }
  }
  const layouts = layoutTensors(tensors, alignment);

  const bb = new ByteBuilder();
  bb.u32(GGUF_MAGIC);
  bb.u32(GGUF_VERSION);
  bb.u64(layouts.length);
  bb.u64(allKvs.length);
  for (const kv of allKvs) writeKv(bb, kv);
  for (const t of layouts) {
    bb.str(t.name);
    bb.u32(t.ne.length);
    for (const d of t.ne) bb.u64(d);
    bb.u32(t.type);
    bb.u64(t.offset);
  }
  bb.zeros(alignUp(bb.length, alignment) - bb.length);
  const last = layouts[layouts.length - 1];
  const dataBytes = last ? alignUp(last.offset + last.nbytes, alignment) : 0;
  return { bytes: bb.toBuffer(), alignment, tensors: layouts, dataOffset: bb.length, fileSize: bb.length + dataBytes, kvCount: allKvs.length };
}

/**
 * Writes a GGUF file: `new GgufWriter(path, kvs, tensors)` writes the header at once; then call
 * `writeTensorData(chunk)` repeatedly (tensor by tensor, in declaration order) and `finish()`.
 */
export class GgufWriter {
  readonly path: string;
  readonly alignment: number;
  readonly tensors: readonly GgufTensorLayout[];
  readonly dataOffset: number;
  /** Total file size once finished. */
  readonly fileSize: number;
  private fd: number | null;
  private pos = 0;
  private current = 0;
  private writtenInCurrent = 0;

  constructor(path: string, kvs: readonly GgufKv[], tensors: readonly GgufTensorDecl[], options: GgufWriterOptions = {}) {
    const header = encodeGgufHeader(kvs, tensors, options);
    this.path = path;
    this.alignment = header.alignment;
    this.tensors = header.tensors;
    this.dataOffset = header.dataOffset;
    this.fileSize = header.fileSize;
    try {
      this.fd = fs.openSync(path, 'w');
    } catch (e) {
      throw new NlaError('ERR_NLA_IO', `cannot create ${path}: ${(e as Error).message}`, { cause: e });
    }
    try {
      this.writeRaw(header.bytes);
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  /** The tensor whose bytes the next `writeTensorData` call continues, or null when all are complete. */
  get currentTensor(): GgufTensorLayout | null {
    return this.tensors[this.current] ?? null;
  }

  private writeRaw(buf: Uint8Array): void {
    if (this.fd === null) throw new NlaError('ERR_NLA_INTERNAL', 'GGUF writer is closed');
    let off = 0;
    while (off < buf.length) {
      let n: number;
      try {
        n = fs.writeSync(this.fd, buf, off, buf.length - off, this.pos);
      } catch (e) {
        throw new NlaError('ERR_NLA_IO', `cannot write ${this.path}: ${(e as Error).message}`, { cause: e });
      }
      off += n;
      this.pos += n;
    }
  }

  /** Append bytes to the current tensor; a chunk may not run past the end of the current tensor. */
  writeTensorData(chunk: Uint8Array): void {
    const t = this.tensors[this.current];
    if (!t) throw new NlaError('ERR_NLA_INTERNAL', `GGUF writer: more data than the declared tensors hold`);
    if (this.writtenInCurrent + chunk.length > t.nbytes) {
      throw new NlaError('ERR_NLA_INTERNAL', `GGUF writer: tensor '${t.name}' takes ${t.nbytes} bytes, got ${this.writtenInCurrent + chunk.length}`);
    }
    this.writeRaw(chunk);
    this.writtenInCurrent += chunk.length;
    if (this.writtenInCurrent === t.nbytes) {
      const end = this.dataOffset + alignUp(t.offset + t.nbytes, this.alignment);
      if (end > this.pos) this.writeRaw(new Uint8Array(end - this.pos));
      this.current++;
      this.writtenInCurrent = 0;
    }
  }

  /** Close the file; throws (and deletes the partial file) if some tensor data is missing. */
  finish(): void {
    if (this.current !== this.tensors.length) {
      const t = this.tensors[this.current]!;
      const msg = `GGUF writer: tensor '${t.name}' is incomplete (${this.writtenInCurrent}/${t.nbytes} bytes)`;
      this.abort();
      throw new NlaError('ERR_NLA_INTERNAL', msg);
    }
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }

  /** Close and delete a partially written file. */
  abort(): void {
    if (this.fd !== null) {
      try {
        fs.closeSync(this.fd);
      } catch {
        /* already failing */
      }
      this.fd = null;
      try {
        fs.unlinkSync(this.path);
      } catch {
        /* nothing to remove */
      }
    }
  }
}

/** Convenience for small files: write a whole GGUF from in-memory tensor bytes. */
export function writeGguf(
  path: string,
  kvs: readonly GgufKv[],
  tensors: readonly (GgufTensorDecl & { readonly data: Uint8Array })[],
  options: GgufWriterOptions = {},
): { fileSize: number; tensors: readonly GgufTensorLayout[] } {
  const w = new GgufWriter(path, kvs, tensors, options);
  try {
    for (const t of tensors) w.writeTensorData(t.data);
    w.finish();
  } catch (e) {
    w.abort();
    throw e;
  }
  return { fileSize: w.fileSize, tensors: w.tensors };
}
