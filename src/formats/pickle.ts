/**
 * A restricted unpickler: a pickle VM that builds plain data (None, bools, ints, floats, strings, bytes,
 * tuples, lists, dicts) and nothing else on its own. GLOBAL / STACK_GLOBAL resolve only names in the
 * caller's allowlist, to TypeScript objects; REDUCE and BUILD only apply those. There is no path from a pickle
 * to code execution: a name outside the allowlist is refused (ERR_NLA_UNSAFE_PICKLE) the moment it is read,
 * before anything after it runs, and the opcodes that create arbitrary objects (INST, OBJ, NEWOBJ,
 * NEWOBJ_EX, EXT*) are refused too.
 *
 * Supported: the opcodes Python's pickler emits for a torch state_dict at protocols 2–5, plus the harmless
 * binary opcodes around them. Text opcodes of protocol 0 (INT, STRING, PERSID, …) are not supported.
 */
import { NlaError } from '../errors';

/** A Python tuple (distinguished from a list, which is a plain array). */
export class PyTuple {
  constructor(readonly items: readonly PickleValue[]) {}
}

/** A Python dict, or a collections.OrderedDict (`ordered`), with `attributes` set by BUILD. */
export class PyDict {
  readonly entries = new Map<PyDictKey, PickleValue>();
  /** Instance attributes set by BUILD (e.g. a state_dict's `_metadata`). */
  readonly attributes = new Map<string, PickleValue>();
  constructor(readonly ordered: boolean = false) {}
}

export type PyDictKey = string | number | bigint | boolean | null;

/** A `bytes` value. */
export class PyBytes {
  constructor(readonly bytes: Uint8Array) {}
}

/**
 * An allowlisted callable or class, implemented in TypeScript. REDUCE calls `call(args)`; BUILD on an object
 * it produced is handled by that object (only PyDict supports BUILD).
 */
export class PyCallable {
  constructor(
    /** "module.name", for messages. */
    readonly qualifiedName: string,
    readonly call: (args: readonly PickleValue[]) => PickleValue,
  ) {}
}

/** Base for opaque values that allowlisted callables or persistent_load return (tensors, storages, dtypes). */
export abstract class PyOpaque {
  abstract readonly kind: string;
}

export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | PyBytes
  | PyTuple
  | PyDict
  | PickleValue[]
  | PyCallable
  | PyOpaque;

export interface UnpickleOptions {
  /** "module name" → implementation. Any other GLOBAL is refused with ERR_NLA_UNSAFE_PICKLE. */
  readonly globals: ReadonlyMap<string, PyCallable | PyOpaque>;
  /** BINPERSID handler; without one, BINPERSID is refused. */
  readonly persistentLoad?: (pid: PickleValue) => PickleValue;
  /** Shown in messages, e.g. "linear_head.pt: data.pkl". */
  readonly label?: string;
  readonly maxStack?: number;
  readonly maxMemo?: number;
  readonly maxMarkDepth?: number;
}

/** `collections.OrderedDict`: called with no arguments (or a list of pairs), gives an ordered PyDict. */
export const ORDERED_DICT = new PyCallable('collections.OrderedDict', (args) => {
  const d = new PyDict(true);
  if (args.length === 0) return d;
  if (args.length === 1 && Array.isArray(args[0])) {
    for (const pair of args[0]) {
      if (!(pair instanceof PyTuple) && !Array.isArray(pair)) {
        throw new NlaError('ERR_NLA_HEAD_INVALID', 'OrderedDict(...) expects key/value pairs');
      }
      const items = pair instanceof PyTuple ? pair.items : pair;
      if (items.length !== 2) throw new NlaError('ERR_NLA_HEAD_INVALID', 'OrderedDict(...) expects key/value pairs');
      d.entries.set(dictKey(items[0], 'OrderedDict'), items[1]);
    }
    return d;
  }
  throw new NlaError('ERR_NLA_HEAD_INVALID', `OrderedDict() called with ${args.length} unexpected arguments`);
});

/** Opcodes that can create objects of arbitrary classes: always refused as unsafe. */
const UNSAFE_OPCODES: Readonly<Record<number, string>> = {
  0x69: 'INST',
  0x6f: 'OBJ',
  0x81: 'NEWOBJ',
  0x92: 'NEWOBJ_EX',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x50: 'PERSID',
};

/** Valid pickle opcodes this VM does not implement (harmless, but not used by torch state_dicts). */
const UNSUPPORTED_OPCODES: Readonly<Record<number, string>> = {
  0x49: 'INT',
  0x4c: 'LONG',
  0x53: 'STRING',
  0x56: 'UNICODE',
  0x46: 'FLOAT',
  0x70: 'PUT',
  0x67: 'GET',
  0x8b: 'LONG4',
  0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS',
  0x91: 'FROZENSET',
  0x96: 'BYTEARRAY8',
  0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

const MARK = Symbol('MARK');
type StackItem = PickleValue | typeof MARK;

/** Unpickles `data` under `options`' allowlist. Throws NlaError on anything unsafe, unsupported or malformed. */
export function unpickle(data: Uint8Array, options: UnpickleOptions): PickleValue {
  return new Unpickler(data, options).run();
}

class Unpickler {
  private readonly view: DataView;
  private readonly label: string;
  private readonly maxStack: number;
  private readonly maxMemo: number;
  private readonly maxMarkDepth: number;
  private pos = 0;
  private opStart = 0;
  private stack: StackItem[] = [];
  private readonly marks: number[] = [];
  private readonly memo = new Map<number, PickleValue>();

  constructor(
    private readonly data: Uint8Array,
    private readonly options: UnpickleOptions,
  ) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    this.label = options.label ?? 'pickle';
    this.maxStack = options.maxStack ?? 1_000_000;
    this.maxMemo = options.maxMemo ?? 1_000_000;
    this.maxMarkDepth = options.maxMarkDepth ?? 1_000;
  }

  private fail(message: string): never {
    throw new NlaError('ERR_NLA_HEAD_INVALID', `${this.label}: ${message} (opcode at offset ${this.opStart})`);
  }

  private unsafe(message: string): never {
    throw new NlaError('ERR_NLA_UNSAFE_PICKLE', `${this.label}: ${message} (offset ${this.opStart}); refusing to load it`);
  }

  private need(n: number): void {
    if (this.pos + n > this.data.length) this.fail(`truncated: needs ${n} more bytes at offset ${this.pos}`);
  }

  private u8(): number {
    this.need(1);
    return this.data[this.pos++]!;
  }
  private u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  private u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  private i32(): number {
    this.need(4);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  private u64(): number {
    this.need(8);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(this.data.length)) this.fail(`length ${v} exceeds the pickle's size`);
    return Number(v);
  }
  private bytes(n: number): Uint8Array {
    this.need(n);
    const b = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  private utf8(n: number): string {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(this.bytes(n));
    } catch (err) {
      if (err instanceof NlaError) throw err;
      return this.fail('invalid UTF-8 in a string');
    }
  }
  private line(): string {
    const end = this.data.indexOf(0x0a, this.pos);
    if (end < 0) this.fail('unterminated text line');
    const text = Buffer.from(this.data.subarray(this.pos, end)).toString('latin1');
    this.pos = end + 1;
    return text;
  }

  private push(v: StackItem): void {
    if (this.stack.length >= this.maxStack) this.fail(`stack grows beyond ${this.maxStack} items`);
    this.stack.push(v);
  }
  private pop(): PickleValue {
    if (this.stack.length <= this.currentMarkBase()) this.fail('stack underflow');
    const v = this.stack.pop();
    if (v === MARK || v === undefined) return this.fail('stack underflow');
    return v;
  }
  private top(): PickleValue {
    if (this.stack.length <= this.currentMarkBase()) this.fail('stack underflow');
    const v = this.stack[this.stack.length - 1];
    if (v === MARK || v === undefined) return this.fail('stack underflow');
    return v;
  }
  private currentMarkBase(): number {
    return this.marks.length === 0 ? 0 : this.marks[this.marks.length - 1]! + 1;
  }
  /** Pops everything above the latest MARK, and the MARK. */
  private popMark(): PickleValue[] {
    const base = this.marks.pop();
    if (base === undefined) this.fail('no MARK on the stack');
    const items = this.stack.splice(base + 1) as PickleValue[];
    this.stack.pop(); // the MARK itself
    return items;
  }
  private memoPut(index: number): void {
    if (!this.memo.has(index) && this.memo.size >= this.maxMemo) this.fail(`memo grows beyond ${this.maxMemo} entries`);
    this.memo.set(index, this.top());
  }
  private memoGet(index: number): void {
    if (!this.memo.has(index)) this.fail(`memo index ${index} was never stored`);
    this.push(this.memo.get(index)!);
  }

  private resolveGlobal(module: string, name: string): PickleValue {
    const found = this.options.globals.get(`${module} ${name}`);
    if (found === undefined) this.unsafe(`the pickle references the global '${module}.${name}', which is not on the allowlist`);
    return found;
  }

  run(): PickleValue {
    const d = this.data;
    while (this.pos < d.length) {
      this.opStart = this.pos;
      const op = this.u8();
      switch (op) {
        case 0x80: { // PROTO
          const proto = this.u8();
          if (proto > 5) this.fail(`unsupported pickle protocol ${proto}`);
          break;
        }
        case 0x95: { // FRAME: framing is only a hint to the reader; the length must still be sane
          this.u64();
          break;
        }
        case 0x2e: { // STOP
          const result = this.pop();
          if (this.stack.length !== 0 || this.marks.length !== 0) this.fail('STOP with items left on the stack');
          return result;
        }
        case 0x28: // MARK
          if (this.marks.length >= this.maxMarkDepth) this.fail(`MARKs nested deeper than ${this.maxMarkDepth}`);
          this.marks.push(this.stack.length);
          this.push(MARK);
          break;
        case 0x30: // POP
          if (this.stack.length > 0 && this.stack[this.stack.length - 1] === MARK) this.popMark();
          else this.pop();
          break;
        case 0x31: // POP_MARK
          this.popMark();
          break;
        case 0x32: // DUP
          this.push(this.top());
          break;
        case 0x4e: // NONE
          this.push(null);
          break;
        case 0x88: // NEWTRUE
          this.push(true);
          break;
        case 0x89: // NEWFALSE
          this.push(false);
          break;
        case 0x4a: // BININT
          this.push(this.i32());
          break;
        case 0x4b: // BININT1
          this.push(this.u8());
          break;
        case 0x4d: // BININT2
          this.push(this.u16());
          break;
        case 0x8a: { // LONG1
          const n = this.u8();
          this.push(decodeLong(this.bytes(n)));
          break;
        }
        case 0x47: { // BINFLOAT (big-endian double)
          this.need(8);
          const v = this.view.getFloat64(this.pos, false);
          this.pos += 8;
          this.push(v);
          break;
        }
        case 0x58: // BINUNICODE
          this.push(this.utf8(this.u32()));
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.push(this.utf8(this.u8()));
          break;
        case 0x8d: // BINUNICODE8
          this.push(this.utf8(this.u64()));
          break;
        case 0x54: { // BINSTRING (Python 2 str; read as latin-1)
          const n = this.i32();
          if (n < 0) this.fail('negative BINSTRING length');
          this.push(Buffer.from(this.bytes(n)).toString('latin1'));
          break;
        }
        case 0x55: // SHORT_BINSTRING
          this.push(Buffer.from(this.bytes(this.u8())).toString('latin1'));
          break;
        case 0x42: // BINBYTES
          this.push(new PyBytes(this.bytes(this.u32())));
          break;
        case 0x43: // SHORT_BINBYTES
          this.push(new PyBytes(this.bytes(this.u8())));
          break;
        case 0x8e: // BINBYTES8
          this.push(new PyBytes(this.bytes(this.u64())));
          break;
        case 0x29: // EMPTY_TUPLE
          this.push(new PyTuple([]));
          break;
        case 0x74: // TUPLE
          this.push(new PyTuple(this.popMark()));
          break;
        case 0x85: { // TUPLE1
          const a = this.pop();
          this.push(new PyTuple([a]));
          break;
        }
        case 0x86: { // TUPLE2
          const b = this.pop();
          const a = this.pop();
          this.push(new PyTuple([a, b]));
          break;
        }
        case 0x87: { // TUPLE3
          const c = this.pop();
          const b = this.pop();
          const a = this.pop();
          this.push(new PyTuple([a, b, c]));
          break;
        }
        case 0x5d: // EMPTY_LIST
          this.push([]);
          break;
        case 0x6c: // LIST
          this.push(this.popMark());
          break;
        case 0x61: { // APPEND
          const v = this.pop();
          this.asList(this.top()).push(v);
          break;
        }
        case 0x65: { // APPENDS
          const items = this.popMark();
          const list = this.asList(this.top());
          for (const v of items) list.push(v);
          break;
        }
        case 0x7d: // EMPTY_DICT
          this.push(new PyDict());
          break;
        case 0x64: { // DICT
          const items = this.popMark();
          const dict = new PyDict();
          this.setItems(dict, items);
          this.push(dict);
          break;
        }
        case 0x73: { // SETITEM
          const v = this.pop();
          const k = this.pop();
          this.setItems(this.asDict(this.top()), [k, v]);
          break;
        }
        case 0x75: { // SETITEMS
          const items = this.popMark();
          this.setItems(this.asDict(this.top()), items);
          break;
        }
        case 0x71: // BINPUT
          this.memoPut(this.u8());
          break;
        case 0x72: // LONG_BINPUT
          this.memoPut(this.u32());
          break;
        case 0x94: // MEMOIZE
          this.memoPut(this.memo.size);
          break;
        case 0x68: // BINGET
          this.memoGet(this.u8());
          break;
        case 0x6a: // LONG_BINGET
          this.memoGet(this.u32());
          break;
        case 0x63: { // GLOBAL "module\nname\n"
          const module = this.line();
          const name = this.line();
          this.push(this.resolveGlobal(module, name));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string') this.fail('STACK_GLOBAL needs two strings');
          this.push(this.resolveGlobal(module, name));
          break;
        }
        case 0x52: { // REDUCE
          const args = this.pop();
          const callable = this.pop();
          if (!(callable instanceof PyCallable)) {
            this.unsafe(`REDUCE applied to ${describeValue(callable)}, which is not an allowlisted callable`);
          }
          if (!(args instanceof PyTuple)) this.fail(`REDUCE arguments for ${callable.qualifiedName} are not a tuple`);
          let result: PickleValue;
          try {
            result = callable.call(args.items);
          } catch (err) {
            if (err instanceof NlaError) {
              throw new NlaError(err.code, `${this.label}: ${callable.qualifiedName}: ${err.message} (offset ${this.opStart})`, { cause: err });
            }
            throw err;
          }
          this.push(result);
          break;
        }
        case 0x62: { // BUILD
          const state = this.pop();
          const target = this.top();
          this.build(target, state);
          break;
        }
        case 0x51: { // BINPERSID
          const pid = this.pop();
          const load = this.options.persistentLoad;
          if (load === undefined) this.unsafe('BINPERSID without a persistent_load handler');
          this.push(load(pid));
          break;
        }
        default: {
          const unsafeName = UNSAFE_OPCODES[op];
          if (unsafeName !== undefined) this.unsafe(`opcode ${unsafeName} (0x${op.toString(16)}) is not allowed`);
          const unsupported = UNSUPPORTED_OPCODES[op];
          if (unsupported !== undefined) this.fail(`opcode ${unsupported} (0x${op.toString(16)}) is not supported`);
          this.fail(`unknown pickle opcode 0x${op.toString(16).padStart(2, '0')}`);
        }
      }
    }
    return this.fail('the pickle ends without STOP');
  }

  private asList(v: PickleValue): PickleValue[] {
    if (!Array.isArray(v)) this.fail(`APPEND(S) on ${describeValue(v)}, not a list`);
    return v;
  }

  private asDict(v: PickleValue): PyDict {
    if (!(v instanceof PyDict)) this.fail(`SETITEM(S) on ${describeValue(v)}, not a dict`);
    return v;
  }

  private setItems(dict: PyDict, items: PickleValue[]): void {
    if (items.length % 2 !== 0) this.fail('odd number of items for a dict');
    for (let i = 0; i < items.length; i += 2) {
      dict.entries.set(dictKey(items[i]!, this.label), items[i + 1]!);
    }
  }

  /** BUILD: only a dict's instance attributes (the `_metadata` of a state_dict) can be set. */
  private build(target: PickleValue, state: PickleValue): void {
    if (!(target instanceof PyDict)) this.unsafe(`BUILD on ${describeValue(target)} is not allowed`);
    let attrs: PickleValue = state;
    if (state instanceof PyTuple && state.items.length === 2) {
      // (instance __dict__, slots); slots must be empty for a dict
      if (state.items[1] !== null) this.fail('BUILD with slot state on a dict');
      attrs = state.items[0]!;
    }
    if (attrs === null) return;
    if (!(attrs instanceof PyDict)) this.fail(`BUILD state for a dict is ${describeValue(attrs)}, not a dict`);
    for (const [k, v] of attrs.entries) {
      if (typeof k !== 'string') this.fail('BUILD attribute names must be strings');
      target.attributes.set(k, v);
    }
  }
}

function dictKey(k: PickleValue, label: string): PyDictKey {
  if (k === null || typeof k === 'string' || typeof k === 'number' || typeof k === 'bigint' || typeof k === 'boolean') {
    return k;
  }
  throw new NlaError('ERR_NLA_HEAD_INVALID', `${label}: unsupported dict key type (${describeValue(k)})`);
}

/** Two's-complement little-endian integer, as LONG1 stores it. */
function decodeLong(bytes: Uint8Array): number | bigint {
  if (bytes.length === 0) return 0;
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
  if ((bytes[bytes.length - 1]! & 0x80) !== 0) v -= 1n << BigInt(8 * bytes.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** A short description of a value, for messages. */
export function describeValue(v: PickleValue): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return 'a list';
  if (v instanceof PyTuple) return `a ${v.items.length}-tuple`;
  if (v instanceof PyDict) return v.ordered ? 'an OrderedDict' : 'a dict';
  if (v instanceof PyBytes) return 'bytes';
  if (v instanceof PyCallable) return v.qualifiedName;
  if (v instanceof PyOpaque) return v.kind;
  return `${typeof v} ${JSON.stringify(typeof v === 'bigint' ? v.toString() : v)}`;
}
