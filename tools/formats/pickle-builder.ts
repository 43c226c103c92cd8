/** A pickle writer for the opcodes torch state_dicts use (test tooling; the package only reads: src/formats/pickle.ts). */
import { NlaError } from '../../src/errors';

// ---------------------------------------------------------------------------------------------------------
// Writer: the few opcodes Python's pickler (protocol 2) emits for a torch state_dict, with its memo rules.

/** Builds pickle bytes opcode by opcode, numbering memo entries like Python's pickler (BINPUT n, in order). */
export class PickleBuilder {
  private readonly chunks: number[] = [];
  private memoCount = 0;

  proto(version: number): this {
    return this.op(0x80, version);
  }
  mark(): this {
    return this.op(0x28);
  }
  stop(): this {
    return this.op(0x2e);
  }
  none(): this {
    return this.op(0x4e);
  }
  bool(v: boolean): this {
    return this.op(v ? 0x88 : 0x89);
  }
  emptyTuple(): this {
    return this.op(0x29);
  }
  emptyDict(): this {
    return this.op(0x7d);
  }
  /** TUPLE1/2/3 for 1–3 items (after the items), TUPLE for more (a MARK must precede the items). */
  tupleOf(count: number): this {
    if (count === 1) return this.op(0x85);
    if (count === 2) return this.op(0x86);
    if (count === 3) return this.op(0x87);
    return this.op(0x74);
  }
  setitem(): this {
    return this.op(0x73);
  }
  setitems(): this {
    return this.op(0x75);
  }
  reduce(): this {
    return this.op(0x52);
  }
  build(): this {
    return this.op(0x62);
  }
  binpersid(): this {
    return this.op(0x51);
  }
  /** Python's save_long for protocol 2: BININT1 / BININT2 / BININT / LONG1. */
  int(v: number): this {
    if (!Number.isSafeInteger(v)) throw new NlaError('ERR_NLA_INVALID_ARG', `pickle: ${v} is not a safe integer`);
    if (v >= 0 && v <= 0xff) return this.op(0x4b, v);
    if (v >= 0 && v <= 0xffff) return this.op(0x4d, v & 0xff, v >>> 8);
    if (v >= -0x80000000 && v <= 0x7fffffff) {
      const b = Buffer.alloc(4);
      b.writeInt32LE(v);
      return this.op(0x4a, ...b);
    }
    let x = BigInt(v);
    const bytes: number[] = [];
    // minimal two's complement, like Python's encode_long
    for (;;) {
      bytes.push(Number(x & 0xffn));
      x >>= 8n;
      const sign = (bytes[bytes.length - 1]! & 0x80) !== 0;
      if ((x === 0n && !sign) || (x === -1n && sign)) break;
    }
    return this.op(0x8a, bytes.length, ...bytes);
  }
  /** BINUNICODE (Python's choice for str at protocol 2). */
  unicode(s: string): this {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    return this.op(0x58, ...len).raw(b);
  }
  global(module: string, name: string): this {
    return this.op(0x63).raw(Buffer.from(`${module}\n${name}\n`, 'utf8'));
  }
  /** BINPUT/LONG_BINPUT the next memo index; returns it. */
  memoize(): number {
    const index = this.memoCount++;
    if (index < 256) this.op(0x71, index);
    else {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(index);
      this.op(0x72, ...b);
    }
    return index;
  }
  get(index: number): this {
    if (index < 256) return this.op(0x68, index);
    const b = Buffer.alloc(4);
    b.writeUInt32LE(index);
    return this.op(0x6a, ...b);
  }
  toBuffer(): Buffer {
    return Buffer.from(this.chunks);
  }

  private op(...bytes: number[]): this {
    for (const b of bytes) this.chunks.push(b);
    return this;
  }
  private raw(bytes: Uint8Array): this {
    for (const b of bytes) this.chunks.push(b);
    return this;
  }
}
