/** The Gemma-4 tokenizer of a GGUF file (a full model or a vocab-only GGUF), run by the native engine. */
import * as fs from 'node:fs';
import { NlaError } from './errors';
import { loadNative, toNlaError, type NativeTokenizer } from './native';
import { TokenizeOptionsSchema, parseOptions, type TokenizeOptions } from './options';

export class Tokenizer {
  private constructor(private readonly native: NativeTokenizer, readonly path: string) {}

  /** Reads tokenizer.ggml.* from a GGUF (tokenizer.ggml.model must be "gemma4"). */
  static async fromGGUF(path: string): Promise<Tokenizer> {
    if (typeof path !== 'string' || path.length === 0) throw new NlaError('ERR_NLA_INVALID_ARG', 'path must be a non-empty string');
    if (!fs.existsSync(path)) throw new NlaError('ERR_NLA_IO', `vocabulary file not found: ${path}`);
    const { binding } = loadNative('cpu');
    try {
      return new Tokenizer(await binding.openTokenizer(path), path);
    } catch (e) {
      throw toNlaError(e);
    }
  }

  get vocabSize(): number {
    return this.native.info().nVocab;
  }
  get bos(): number {
    return this.native.info().bos;
  }
  get eos(): number {
    return this.native.info().eos;
  }

  /** Token ids; BOS first and special tokens parsed by default (what Hugging Face's tokenizer does). */
  encode(text: string, options?: TokenizeOptions): Int32Array {
    if (typeof text !== 'string') throw new NlaError('ERR_NLA_INVALID_ARG', `text must be a string, got ${typeof text}`);
    const o = parseOptions(TokenizeOptionsSchema, options, 'encode options');
    try {
      return this.native.encode(text, o.bos, o.special);
    } catch (e) {
      throw toNlaError(e);
    }
  }

  /** Text of ids; control tokens are dropped unless `special` is true. */
  decode(ids: Int32Array | number[], options?: { special?: boolean }): string {
    const checked = toTokenIds(ids);
    try {
      return this.native.decode(checked, options?.special ?? false);
    } catch (e) {
      throw toNlaError(e);
    }
  }
}

/** Token ids from the caller, checked: an Int32Array, or an array of integers in [0, 2^31 - 1]. */
export function toTokenIds(ids: unknown, what = 'ids'): Int32Array {
  if (ArrayBuffer.isView(ids) && Object.prototype.toString.call(ids) === '[object Int32Array]') {
    if (ids instanceof Int32Array) return ids;
    const foreign = ids as unknown as { buffer: ArrayBufferLike; byteOffset: number; length: number }; // another realm's array
    return new Int32Array(foreign.buffer, foreign.byteOffset, foreign.length);
  }
  if (!Array.isArray(ids)) {
    throw new NlaError('ERR_NLA_INVALID_ARG', `${what} must be an Int32Array or an array of token ids, got ${ids === null ? 'null' : typeof ids}`);
  }
  const out = new Int32Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const v: unknown = ids[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
      throw new NlaError('ERR_NLA_INVALID_ARG', `${what}[${i}] = ${typeof v === 'number' ? String(v) : typeof v} is not a token id (an integer in [0, 2^31 - 1])`);
    }
    out[i] = v;
  }
  return out;
}
