/**
 * Writes safetensors files the way the Python/Rust `safetensors` library does: an 8-byte little-endian header
 * length, a compact JSON header padded with spaces to a multiple of 8 bytes, then the tensors' bytes.
 *
 * Header order follows the library: `__metadata__` first (its keys sorted here; the library's order is a
 * hash map's), then tensors sorted by dtype (larger-alignment first: F32, BF16, F16) and then by name
 * (byte order); data is laid out in that same order. Each tensor entry is
 * `{"dtype":…,"shape":[…],"data_offsets":[begin,end]}`.
 * float32 → float16/bfloat16 conversion rounds to nearest, ties to even (as torch's `.half()`/`.bfloat16()`).
 * (The reader lives in the native engine.)
 */
import { NlaError } from '../../src/errors';

export type SafetensorsWriteDType = 'F32' | 'F16' | 'BF16';

export interface SafetensorsWriteTensor {
  readonly dtype: SafetensorsWriteDType;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

const DTYPE_SIZE: Readonly<Record<SafetensorsWriteDType, number>> = { F32: 4, F16: 2, BF16: 2 };
/** Rank of each dtype in the library's `Dtype` enum (declaration order; sorted descending). */
const DTYPE_RANK: Readonly<Record<SafetensorsWriteDType, number>> = { F16: 0, BF16: 1, F32: 2 };

function bad(message: string): never {
  throw new NlaError('ERR_NLA_INVALID_ARG', `writeSafetensors: ${message}`);
}

export function writeSafetensors(
  tensors: Readonly<Record<string, SafetensorsWriteTensor>>,
  metadata?: Readonly<Record<string, string>>,
): Buffer {
  if (tensors === null || typeof tensors !== 'object') bad('tensors must be an object');
  const names = Object.keys(tensors);
  for (const name of names) {
    const t = tensors[name]!;
    if (name.length === 0 || name === '__metadata__') bad(`invalid tensor name '${name}'`);
    if (t === null || typeof t !== 'object') bad(`tensor '${name}' must be an object`);
    if (!(t.dtype in DTYPE_SIZE)) bad(`tensor '${name}': dtype must be F32, F16 or BF16, got ${String(t.dtype)}`);
    if (!(t.data instanceof Float32Array)) bad(`tensor '${name}': data must be a Float32Array`);
    if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      bad(`tensor '${name}': shape must be an array of non-negative integers`);
    }
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel !== t.data.length) bad(`tensor '${name}': shape [${t.shape.join(', ')}] needs ${numel} values, data has ${t.data.length}`);
  }
  if (metadata !== undefined) {
    if (metadata === null || typeof metadata !== 'object') bad('metadata must be an object of strings');
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') bad(`metadata '${k}' must be a string`);
    }
  }

  const order = [...names].sort((a, b) => {
    const byDtype = DTYPE_RANK[tensors[b]!.dtype] - DTYPE_RANK[tensors[a]!.dtype];
    return byDtype !== 0 ? byDtype : Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
  });

  // Built by hand to fix the key order (JSON.stringify keeps insertion order, but integer-like names would
  // be moved first by JavaScript's property ordering).
  const parts: string[] = [];
  if (metadata !== undefined) {
    const keys = Object.keys(metadata).sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
    parts.push(`"__metadata__":{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`);
  }
  let offset = 0;
  for (const name of order) {
    const t = tensors[name]!;
    const size = t.data.length * DTYPE_SIZE[t.dtype];
    parts.push(`${JSON.stringify(name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${offset + size}]}`);
    offset += size;
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const out = Buffer.alloc(8 + padded + offset, 0);
  out.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(out, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);

  let p = 8 + padded;
  for (const name of order) {
    const t = tensors[name]!;
    const d = t.data;
    switch (t.dtype) {
      case 'F32':
        for (let i = 0; i < d.length; i++, p += 4) out.writeFloatLE(d[i]!, p);
        break;
      case 'F16':
        for (let i = 0; i < d.length; i++, p += 2) out.writeUInt16LE(f32ToF16Bits(d[i]!), p);
        break;
      case 'BF16':
        for (let i = 0; i < d.length; i++, p += 2) out.writeUInt16LE(f32ToBf16Bits(d[i]!), p);
        break;
    }
  }
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function f32Bits(x: number): number {
  f32[0] = x;
  return u32[0]!;
}

/** float32 → IEEE half bits, round to nearest even; overflow → ±Inf; NaN → quiet NaN (sign kept). */
export function f32ToF16Bits(x: number): number {
  const bits = f32Bits(x);
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return mant !== 0 ? sign | 0x7e00 : sign | 0x7c00;
  const e = exp - 127 + 15; // rebiased exponent
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): value = m * 2^-24 with the implicit bit made explicit.
    if (e < -10) return sign; // below half the smallest subnormal: rounds to ±0
    const m = mant | 0x800000;
    const shift = 14 - e; // 24-bit significand → (10 + e)-bit subnormal mantissa
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) === 1)) half += 1;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half += 1; // may carry into the exponent, up to Inf
  return sign | half;
}

/** float32 → bfloat16 bits, round to nearest even; NaN → quiet NaN (sign kept). */
export function f32ToBf16Bits(x: number): number {
  const bits = f32Bits(x);
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return ((bits >>> 16) & 0x8000) | 0x7fc0;
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}
