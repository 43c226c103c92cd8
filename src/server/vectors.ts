/**
 * Vectors on the wire: JSON arrays of numbers, or base64 of little-endian float32 (the OpenAI embeddings API's
 * `encoding_format: 'base64'` convention: 4 bytes per value, no header). Decoding checks the length and that
 * every value is finite, so the engine never sees NaN/Inf.
 */
import { UnprocessableError } from './errors';

export type Encoding = 'float' | 'base64';

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
// strict base64 (RFC 4648 alphabet, padded): Buffer.from(s, 'base64') silently skips invalid characters
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function encodeVector(v: Float32Array, encoding: Encoding): number[] | string {
  if (encoding === 'float') return Array.from(v);
  if (LITTLE_ENDIAN) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  const buf = Buffer.alloc(v.length * 4);
  for (let i = 0; i < v.length; i++) buf.writeFloatLE(v[i], i * 4);
  return buf.toString('base64');
}

/** A JSON number array or a base64 float32 string → Float32Array(d) (422 when it is not d finite values). */
export function decodeVector(x: number[] | string, d: number, what: string): Float32Array {
  let out: Float32Array;
  if (typeof x === 'string') {
    if (!BASE64.test(x)) throw new UnprocessableError(`${what} is not valid base64`);
    const buf = Buffer.from(x, 'base64');
    if (buf.length % 4 !== 0) throw new UnprocessableError(`${what}: ${buf.length} bytes is not a whole number of float32 values`);
    out = new Float32Array(buf.length / 4);
    for (let i = 0; i < out.length; i++) out[i] = buf.readFloatLE(i * 4);
  } else {
    out = Float32Array.from(x);
    // a finite double can still overflow float32 (1e39 → Infinity): checked below like any other non-finite value
  }
  if (out.length !== d) throw new UnprocessableError(`${what} has ${out.length} values, expected d_model = ${d}`);
  for (let i = 0; i < out.length; i++) if (!Number.isFinite(out[i])) throw new UnprocessableError(`${what}[${i}] is not finite (${out[i]})`);
  return out;
}
