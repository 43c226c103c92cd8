/**
 * fp32 -> ggml block encoders for the synthetic model generator.
 *
 * Byte layouts follow ggml-common.h; the quantization rules follow ggml's reference quantizers
 * (`quantize_row_*_ref` in ggml-quants.c, which is what `llama_model_quantize` uses without an imatrix),
 * evaluated in float32 arithmetic (every intermediate goes through fround) so the bytes are identical.
 * K-quants are listed in the type table (sizes) but are produced by llama.cpp itself, not here.
 */
import { NlaError } from '../../src/errors';

// Math builtins bound once: under jest's vm context every `Math.x` lookup goes through the global proxy (~50x slower).
const { abs, floor, max, min, trunc, fround } = Math;


export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
}

export interface GgmlTypeTraits {
  readonly type: GgmlType;
  readonly name: string;
  /** Elements per block. */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly typeSize: number;
  /** Whether this module can encode it. */
  readonly canEncode: boolean;
}

const QK_K = 256;

export const GGML_TYPE_TRAITS: Readonly<Record<number, GgmlTypeTraits>> = Object.freeze({
  [GgmlType.F32]: { type: GgmlType.F32, name: 'f32', blockSize: 1, typeSize: 4, canEncode: true },
  [GgmlType.F16]: { type: GgmlType.F16, name: 'f16', blockSize: 1, typeSize: 2, canEncode: true },
  [GgmlType.BF16]: { type: GgmlType.BF16, name: 'bf16', blockSize: 1, typeSize: 2, canEncode: true },
  [GgmlType.Q4_0]: { type: GgmlType.Q4_0, name: 'q4_0', blockSize: 32, typeSize: 2 + 16, canEncode: true },
  [GgmlType.Q4_1]: { type: GgmlType.Q4_1, name: 'q4_1', blockSize: 32, typeSize: 4 + 16, canEncode: true },
  [GgmlType.Q5_0]: { type: GgmlType.Q5_0, name: 'q5_0', blockSize: 32, typeSize: 2 + 4 + 16, canEncode: true },
  [GgmlType.Q5_1]: { type: GgmlType.Q5_1, name: 'q5_1', blockSize: 32, typeSize: 4 + 4 + 16, canEncode: true },
  [GgmlType.Q8_0]: { type: GgmlType.Q8_0, name: 'q8_0', blockSize: 32, typeSize: 2 + 32, canEncode: true },
  [GgmlType.Q8_1]: { type: GgmlType.Q8_1, name: 'q8_1', blockSize: 32, typeSize: 4 + 32, canEncode: false },
  [GgmlType.Q2_K]: { type: GgmlType.Q2_K, name: 'q2_K', blockSize: QK_K, typeSize: 2 * 2 + QK_K / 16 + QK_K / 4, canEncode: false },
  [GgmlType.Q3_K]: { type: GgmlType.Q3_K, name: 'q3_K', blockSize: QK_K, typeSize: 2 + QK_K / 4 + QK_K / 8 + 12, canEncode: false },
  [GgmlType.Q4_K]: { type: GgmlType.Q4_K, name: 'q4_K', blockSize: QK_K, typeSize: 2 * 2 + 12 + QK_K / 2, canEncode: false },
  [GgmlType.Q5_K]: { type: GgmlType.Q5_K, name: 'q5_K', blockSize: QK_K, typeSize: 2 * 2 + 12 + QK_K / 8 + QK_K / 2, canEncode: false },
  [GgmlType.Q6_K]: { type: GgmlType.Q6_K, name: 'q6_K', blockSize: QK_K, typeSize: 2 + QK_K / 16 + 3 * QK_K / 4, canEncode: false },
  [GgmlType.Q8_K]: { type: GgmlType.Q8_K, name: 'q8_K', blockSize: QK_K, typeSize: 4 + QK_K + (QK_K / 16) * 2, canEncode: false },
});

/** The weight types the synthetic generator can write, by their lower-case ggml names. */
export type EncodableTypeName = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1';

export const ENCODABLE_TYPE_NAMES: readonly EncodableTypeName[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1'];

const TYPE_BY_NAME: Readonly<Record<EncodableTypeName, GgmlType>> = {
  f32: GgmlType.F32,
  f16: GgmlType.F16,
  bf16: GgmlType.BF16,
  q8_0: GgmlType.Q8_0,
  q4_0: GgmlType.Q4_0,
  q4_1: GgmlType.Q4_1,
  q5_0: GgmlType.Q5_0,
  q5_1: GgmlType.Q5_1,
};

export function ggmlTypeFromName(name: string): GgmlType {
  const t = (TYPE_BY_NAME as Record<string, GgmlType | undefined>)[name.toLowerCase()];
  if (t === undefined) {
    throw new NlaError('ERR_NLA_INVALID_ARG', `unsupported synthetic weight type '${name}' (expected one of ${ENCODABLE_TYPE_NAMES.join(', ')})`);
  }
  return t;
}

export function ggmlTypeTraits(type: GgmlType): GgmlTypeTraits {
  const t = GGML_TYPE_TRAITS[type];
  if (!t) throw new NlaError('ERR_NLA_UNSUPPORTED_TENSOR_TYPE', `unknown ggml type ${type}`);
  return t;
}

export function ggmlTypeName(type: GgmlType): string {
  return ggmlTypeTraits(type).name;
}

/** Bytes of one row of `n` elements (`n` must be a multiple of the block size). */
export function rowSize(type: GgmlType, n: number): number {
  const t = ggmlTypeTraits(type);
  if (!Number.isInteger(n) || n < 0 || n % t.blockSize !== 0) {
    throw new NlaError('ERR_NLA_INVALID_ARG', `row length ${n} is not a multiple of the ${t.name} block size ${t.blockSize}`);
  }
  return (n / t.blockSize) * t.typeSize;
}

/** Bytes of a tensor with ggml shape `ne` (ne[0] is the row length). */
export function tensorBytes(type: GgmlType, ne: readonly number[]): number {
  let rows = 1;
  for (let i = 1; i < ne.length; i++) rows *= ne[i]!;
  return rowSize(type, ne[0] ?? 1) * rows;
}

// ---------------------------------------------------------------- scalar conversions

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

export function f32ToBits(x: number): number {
  f32buf[0] = x;
  return u32buf[0]!;
}

export function bitsToF32(b: number): number {
  u32buf[0] = b >>> 0;
  return f32buf[0]!;
}

/** fp32 -> IEEE half bits, round to nearest even (same results as ggml_compute_fp32_to_fp16 / F16C). */
export function fp32ToFp16Bits(x: number): number {
  const w = f32ToBits(x);
  const sign = (w >>> 16) & 0x8000;
  const absw = w & 0x7fffffff;
  if (absw > 0x7f800000) return sign | 0x7e00; // NaN (ggml yields the canonical quiet NaN)
  if (absw >= 0x477ff000) return sign | 0x7c00; // rounds to >= 65536 -> inf
  if (absw < 0x38800000) {
    // result is subnormal half (or zero): value / 2^-24, round half to even
    const v = bitsToF32(absw);
    const scaled = v * 16777216; // exact in double
    let q = floor(scaled);
    const rem = scaled - q;
    if (rem > 0.5 || (rem === 0.5 && (q & 1) === 1)) q += 1;
    return sign | q;
  }
  // normal half
  const exp = (absw >>> 23) - 127 + 15;
  const mant = absw & 0x7fffff;
  let h = (exp << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h += 1; // carry into exponent is correct
  return sign | h;
}

export function fp16BitsToFp32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** fp32 -> bf16 bits exactly as ggml_compute_fp32_to_bf16 (round to nearest even, NaN forced quiet). */
export function fp32ToBf16Bits(x: number): number {
  const u = f32ToBits(x);
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 64) & 0xffff;
  return (((u + (0x7fff + ((u >>> 16) & 1))) >>> 0) >>> 16) & 0xffff;
}

export function bf16BitsToFp32(b: number): number {
  return bitsToF32((b & 0xffff) << 16);
}

/** C `roundf`: half away from zero. */
function roundf(x: number): number {
  return x < 0 ? -floor(-x + 0.5) : floor(x + 0.5);
}

const fr = fround;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const FLT_MAX = 3.4028234663852886e38;

// ---------------------------------------------------------------- block encoders (one block of 32 at src[o..o+32))

function encodeQ8_0(src: Float32Array, o: number, dst: Uint8Array, p: number): void {
  let amax = 0;
  for (let j = 0; j < 32; j++) amax = max(amax, abs(src[o + j]!));
  const d = fr(amax / 127);
  const id = d ? fr(1 / d) : 0;
  writeHalf(dst, p, fp32ToFp16Bits(d));
  for (let j = 0; j < 32; j++) dst[p + 2 + j] = roundf(fr(src[o + j]! * id)) & 0xff;
}

function absMaxSigned(src: Float32Array, o: number): number {
  let amax = 0;
  let max = 0;
  for (let j = 0; j < 32; j++) {
    const v = src[o + j]!;
    if (amax < abs(v)) {
      amax = abs(v);
      max = v;
    }
  }
  return max;
}

function minMax(src: Float32Array, o: number): [number, number] {
  let lo = FLT_MAX;
  let hi = -FLT_MAX;
  for (let j = 0; j < 32; j++) {
    const v = src[o + j]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** (int8_t) cast of a float known to be in int8 range: truncation toward zero. */
function toInt8(x: number): number {
  return trunc(x);
}

function encodeQ4_0(src: Float32Array, o: number, dst: Uint8Array, p: number): void {
  const max = absMaxSigned(src, o);
  const d = fr(max / -8);
  const id = d ? fr(1 / d) : 0;
  writeHalf(dst, p, fp32ToFp16Bits(d));
  for (let j = 0; j < 16; j++) {
    const x0 = fr(src[o + j]! * id);
    const x1 = fr(src[o + 16 + j]! * id);
    const xi0 = min(15, toInt8(fr(x0 + 8.5)));
    const xi1 = min(15, toInt8(fr(x1 + 8.5)));
    dst[p + 2 + j] = (xi0 & 0xff) | ((xi1 << 4) & 0xff);
  }
}

function encodeQ4_1(src: Float32Array, o: number, dst: Uint8Array, p: number): void {
  const [lo, hi] = minMax(src, o);
  const d = fr(fr(hi - lo) / 15);
  const id = d ? fr(1 / d) : 0;
  writeHalf(dst, p, fp32ToFp16Bits(d));
  writeHalf(dst, p + 2, fp32ToFp16Bits(lo));
  for (let j = 0; j < 16; j++) {
    const x0 = fr(fr(src[o + j]! - lo) * id);
    const x1 = fr(fr(src[o + 16 + j]! - lo) * id);
    const xi0 = min(15, toInt8(fr(x0 + 0.5)));
    const xi1 = min(15, toInt8(fr(x1 + 0.5)));
    dst[p + 4 + j] = (xi0 & 0xff) | ((xi1 << 4) & 0xff);
  }
}

function encodeQ5_0(src: Float32Array, o: number, dst: Uint8Array, p: number): void {
  const max = absMaxSigned(src, o);
  const d = fr(max / -16);
  const id = d ? fr(1 / d) : 0;
  writeHalf(dst, p, fp32ToFp16Bits(d));
  let qh = 0;
  for (let j = 0; j < 16; j++) {
    const x0 = fr(src[o + j]! * id);
    const x1 = fr(src[o + 16 + j]! * id);
    const xi0 = min(31, toInt8(fr(x0 + 16.5))) & 0xff;
    const xi1 = min(31, toInt8(fr(x1 + 16.5))) & 0xff;
    dst[p + 6 + j] = (xi0 & 0x0f) | ((xi1 & 0x0f) << 4);
    qh |= ((xi0 & 0x10) >>> 4) << j;
    qh |= ((xi1 & 0x10) >>> 4) << (j + 16);
  }
  writeU32(dst, p + 2, qh >>> 0);
}

function encodeQ5_1(src: Float32Array, o: number, dst: Uint8Array, p: number): void {
  const [lo, hi] = minMax(src, o);
  const d = fr(fr(hi - lo) / 31);
  const id = d ? fr(1 / d) : 0;
  writeHalf(dst, p, fp32ToFp16Bits(d));
  writeHalf(dst, p + 2, fp32ToFp16Bits(lo));
  let qh = 0;
  for (let j = 0; j < 16; j++) {
    const x0 = fr(fr(src[o + j]! - lo) * id);
    const x1 = fr(fr(src[o + 16 + j]! - lo) * id);
    const xi0 = trunc(fr(x0 + 0.5)) & 0xff; // (uint8_t), no clamp in ggml
    const xi1 = trunc(fr(x1 + 0.5)) & 0xff;
    dst[p + 8 + j] = (xi0 & 0x0f) | ((xi1 & 0x0f) << 4);
    qh |= ((xi0 & 0x10) >>> 4) << j;
    qh |= ((xi1 & 0x10) >>> 4) << (j + 16);
  }
  writeU32(dst, p + 4, qh >>> 0);
}

function writeHalf(dst: Uint8Array, p: number, h: number): void {
  dst[p] = h & 0xff;
  dst[p + 1] = (h >>> 8) & 0xff;
}

function writeU32(dst: Uint8Array, p: number, v: number): void {
  dst[p] = v & 0xff;
  dst[p + 1] = (v >>> 8) & 0xff;
  dst[p + 2] = (v >>> 16) & 0xff;
  dst[p + 3] = (v >>> 24) & 0xff;
}

const BLOCK_ENCODERS: Partial<Record<GgmlType, (src: Float32Array, o: number, dst: Uint8Array, p: number) => void>> = {
  [GgmlType.Q8_0]: encodeQ8_0,
  [GgmlType.Q4_0]: encodeQ4_0,
  [GgmlType.Q4_1]: encodeQ4_1,
  [GgmlType.Q5_0]: encodeQ5_0,
  [GgmlType.Q5_1]: encodeQ5_1,
};

/**
 * Encode `src` (a whole number of rows, so a whole number of blocks) into ggml bytes of `type`.
 * Writes into `out` when given (it must be exactly the right size) and returns the bytes.
 */
export function quantize(type: GgmlType, src: Float32Array, out?: Uint8Array): Uint8Array {
  const t = ggmlTypeTraits(type);
  if (!t.canEncode) {
    throw new NlaError('ERR_NLA_UNSUPPORTED_TENSOR_TYPE', `the synthetic generator cannot encode ${t.name} (K-quants come from llama_model_quantize)`);
  }
  const nbytes = rowSize(type, src.length);
  const dst = out ?? new Uint8Array(nbytes);
  if (dst.length !== nbytes) throw new NlaError('ERR_NLA_INTERNAL', `quantize: output buffer has ${dst.length} bytes, need ${nbytes}`);
  switch (type) {
    case GgmlType.F32: {
      if (LITTLE_ENDIAN) {
        dst.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
      } else {
        const dv = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
        for (let i = 0; i < src.length; i++) dv.setFloat32(i * 4, src[i]!, true);
      }
      return dst;
    }
    case GgmlType.F16:
    case GgmlType.BF16: {
      const conv = type === GgmlType.F16 ? fp32ToFp16Bits : fp32ToBf16Bits;
      for (let i = 0; i < src.length; i++) writeHalf(dst, 2 * i, conv(src[i]!));
      return dst;
    }
    default: {
      const enc = BLOCK_ENCODERS[type]!;
      const nb = src.length / t.blockSize;
      for (let b = 0; b < nb; b++) enc(src, b * t.blockSize, dst, b * t.typeSize);
      return dst;
    }
  }
}

/** Inverse of `quantize` for the encodable types (what ggml's dequantize_row_* computes). */
export function dequantize(type: GgmlType, bytes: Uint8Array, n: number): Float32Array {
  const t = ggmlTypeTraits(type);
  const need = rowSize(type, n);
  if (bytes.length < need) throw new NlaError('ERR_NLA_INVALID_ARG', `dequantize: ${bytes.length} bytes < ${need}`);
  const out = new Float32Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const half = (p: number): number => fp16BitsToFp32(dv.getUint16(p, true));
  switch (type) {
    case GgmlType.F32:
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
      return out;
    case GgmlType.F16:
      for (let i = 0; i < n; i++) out[i] = half(2 * i);
      return out;
    case GgmlType.BF16:
      for (let i = 0; i < n; i++) out[i] = bf16BitsToFp32(dv.getUint16(2 * i, true));
      return out;
    default:
      break;
  }
  const nb = n / t.blockSize;
  for (let b = 0; b < nb; b++) {
    const p = b * t.typeSize;
    const o = b * 32;
    switch (type) {
      case GgmlType.Q8_0: {
        const d = half(p);
        for (let j = 0; j < 32; j++) out[o + j] = dv.getInt8(p + 2 + j) * d;
        break;
      }
      case GgmlType.Q4_0: {
        const d = half(p);
        for (let j = 0; j < 16; j++) {
          const q = bytes[p + 2 + j]!;
          out[o + j] = ((q & 0x0f) - 8) * d;
          out[o + 16 + j] = ((q >>> 4) - 8) * d;
        }
        break;
      }
      case GgmlType.Q4_1: {
        const d = half(p);
        const m = half(p + 2);
        for (let j = 0; j < 16; j++) {
          const q = bytes[p + 4 + j]!;
          out[o + j] = (q & 0x0f) * d + m;
          out[o + 16 + j] = (q >>> 4) * d + m;
        }
        break;
      }
      case GgmlType.Q5_0:
      case GgmlType.Q5_1: {
        const hasMin = type === GgmlType.Q5_1;
        const d = half(p);
        const m = hasMin ? half(p + 2) : 0;
        const qh = dv.getUint32(p + (hasMin ? 4 : 2), true);
        const qs = p + (hasMin ? 8 : 6);
        for (let j = 0; j < 16; j++) {
          const q = bytes[qs + j]!;
          const x0 = (q & 0x0f) | (((qh >>> j) & 1) << 4);
          const x1 = (q >>> 4) | (((qh >>> (j + 16)) & 1) << 4);
          out[o + j] = hasMin ? x0 * d + m : (x0 - 16) * d;
          out[o + 16 + j] = hasMin ? x1 * d + m : (x1 - 16) * d;
        }
        break;
      }
      default:
        throw new NlaError('ERR_NLA_UNSUPPORTED_TENSOR_TYPE', `dequantize: ${t.name} not supported here`);
    }
  }
  return out;
}
