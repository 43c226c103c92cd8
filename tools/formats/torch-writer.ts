/** torch.save-compatible state_dict writer (test tooling; the package only reads .pt files: src/formats/torch.ts). */
import { NlaError } from '../../src/errors';
import { PickleBuilder } from './pickle-builder';
import { writeZip } from './zip-writer';
import { crc32 as zlibCrc } from '../../src/formats/zip';
import { LITTLE_ENDIAN_HOST } from '../../src/formats/torch';

// ---------------------------------------------------------------------------------------------------------
// Writer

export interface WriteTorchTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export interface WriteTorchOptions {
  /** Root folder inside the zip; torch uses the file's base name (default 'linear_head'). */
  readonly archiveName?: string;
  /** Wrap values in nn.Parameter like state_dict(keep_vars=True) (default true); requires_grad = true. */
  readonly asParameters?: boolean;
  /** Device string recorded in each persistent id (default 'cpu'). */
  readonly location?: string;
  /** The state_dict's `_metadata` as nn.Module writes it (default `{'': {'version': 1}}`, as nn.Linear); null omits it. */
  readonly metadata?: Readonly<Record<string, Readonly<Record<string, number>>>> | null;
}

/**
 * Writes float32 tensors the way `torch.save(module.state_dict(...))` does (torch 2.x record set): the pickle
 * is byte-identical to Python's protocol-2 pickler output for the same state_dict, and the zip follows
 * PyTorchStreamWriter's layout. The `.data/serialization_id` is a deterministic 40-digit id of the same form
 * as torch's (torch derives its digits from std::hash, which is implementation-defined).
 */
export function writeTorchStateDict(tensors: Readonly<Record<string, WriteTorchTensor>>, options: WriteTorchOptions = {}): Buffer {
  const archiveName = options.archiveName ?? 'linear_head';
  const asParameters = options.asParameters ?? true;
  const location = options.location ?? 'cpu';
  const metadata = options.metadata === undefined ? { '': { version: 1 } } : options.metadata;
  if (!/^[^/\\\0]{1,200}$/.test(archiveName)) throw new NlaError('ERR_NLA_INVALID_ARG', `invalid archiveName '${archiveName}'`);

  const names = Object.keys(tensors);
  for (const name of names) {
    const t = tensors[name]!;
    if (!(t.data instanceof Float32Array)) throw new NlaError('ERR_NLA_INVALID_ARG', `tensor '${name}': data must be a Float32Array`);
    if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      throw new NlaError('ERR_NLA_INVALID_ARG', `tensor '${name}': shape must be an array of non-negative integers`);
    }
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel !== t.data.length) {
      throw new NlaError('ERR_NLA_INVALID_ARG', `tensor '${name}': shape [${t.shape.join(', ')}] needs ${numel} values, data has ${t.data.length}`);
    }
  }

  // Python's pickler memoizes every str/tuple/global/object it writes (BINPUT n in order) and refers back
  // with BINGET when it meets the same object again: the globals, the interned 'storage' string and the
  // 'cpu' location string (torch returns the same literal each time; 'cuda:N' strings are built anew).
  const p = new PickleBuilder();
  const memo = new Map<string, number>();
  const once = (id: string, write: () => void): void => {
    const index = memo.get(id);
    if (index !== undefined) p.get(index);
    else {
      write();
      memo.set(id, p.memoize());
    }
  };
  const orderedDict = (): void => {
    once('g:OrderedDict', () => p.global('collections', 'OrderedDict'));
    p.emptyTuple().reduce();
    p.memoize();
  };
  const intTuple = (values: readonly number[]): void => {
    if (values.length === 0) {
      p.emptyTuple(); // the empty tuple is a singleton Python never memoizes
      return;
    }
    if (values.length > 3) p.mark();
    for (const v of values) p.int(v);
    p.tupleOf(values.length);
    p.memoize();
  };

  p.proto(2);
  orderedDict();
  let storageKey = 0;
  const storages: { key: string; data: Float32Array }[] = [];
  writeDictItems(p, names, (name) => {
    const t = tensors[name]!;
    p.unicode(name);
    p.memoize();
    if (asParameters) once('g:_rebuild_parameter', () => p.global('torch._utils', '_rebuild_parameter'));
    once('g:_rebuild_tensor_v2', () => p.global('torch._utils', '_rebuild_tensor_v2'));
    p.mark(); // args of _rebuild_tensor_v2 (6 items)
    p.mark(); // persistent id (5 items)
    once('s:storage', () => p.unicode('storage'));
    once('g:FloatStorage', () => p.global('torch', 'FloatStorage'));
    const key = String(storageKey++);
    p.unicode(key);
    p.memoize();
    if (location === 'cpu') once('s:cpu', () => p.unicode('cpu'));
    else {
      p.unicode(location);
      p.memoize();
    }
    p.int(t.data.length);
    p.tupleOf(5);
    p.memoize();
    p.binpersid();
    p.int(0); // storage offset
    intTuple(t.shape);
    intTuple(contiguousStride(t.shape));
    p.bool(false); // the tensor's own requires_grad (Parameter data is detached)
    orderedDict(); // backward hooks
    p.tupleOf(6);
    p.memoize();
    p.reduce();
    p.memoize();
    if (asParameters) {
      p.bool(true);
      orderedDict();
      p.tupleOf(3);
      p.memoize();
      p.reduce();
      p.memoize();
    }
    storages.push({ key, data: t.data });
  });
  if (metadata !== null) {
    // BUILD with the instance __dict__ {'_metadata': OrderedDict({prefix: {'version': n}})}
    p.emptyDict();
    p.memoize();
    p.unicode('_metadata');
    p.memoize();
    orderedDict();
    const prefixes = Object.keys(metadata);
    writeDictItems(p, prefixes, (prefix) => {
      p.unicode(prefix);
      p.memoize();
      p.emptyDict();
      p.memoize();
      const fields = Object.keys(metadata[prefix]!);
      writeDictItems(p, fields, (field) => {
        p.unicode(field);
        p.memoize();
        p.int(metadata[prefix]![field]!);
      });
    });
    p.setitem();
    p.build();
  }
  p.stop();
  const pickle = p.toBuffer();

  const text = (s: string): Buffer => Buffer.from(s, 'latin1');
  const records: { name: string; data: Uint8Array }[] = [
    { name: 'data.pkl', data: pickle },
    { name: '.format_version', data: text('1') },
    { name: '.storage_alignment', data: text('64') },
    { name: 'byteorder', data: text('little') },
    ...storages.map((s) => ({ name: `data/${s.key}`, data: float32LittleEndian(s.data) })),
    { name: 'version', data: text('3\n') },
  ];
  records.push({ name: '.data/serialization_id', data: text(serializationId(records)) });
  return writeZip(
    records.map((r) => ({ name: `${archiveName}/${r.name}`, data: r.data })),
    { alignment: 64 },
  );
}

/** Python's _batch_setitems: batches of 1000; MARK…SETITEMS for several items, SETITEM for one. */
function writeDictItems(p: PickleBuilder, keys: readonly string[], writeItem: (key: string) => void): void {
  for (let start = 0; start < keys.length; start += 1000) {
    const batch = keys.slice(start, start + 1000);
    if (batch.length > 1) p.mark();
    for (const k of batch) writeItem(k);
    if (batch.length > 1) p.setitems();
    else p.setitem();
  }
}

function contiguousStride(shape: readonly number[]): number[] {
  const stride = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    stride[i] = s;
    s *= Math.max(1, shape[i]!);
  }
  return stride;
}

function float32LittleEndian(data: Float32Array): Buffer {
  if (LITTLE_ENDIAN_HOST) return Buffer.from(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)); // a copy
  const out = Buffer.alloc(data.length * 4);
  for (let i = 0; i < data.length; i++) out.writeFloatLE(data[i]!, i * 4);
  return out;
}

/** 20 digits of an FNV-1a hash of the record names + 20 digits of a combination of their CRC-32s. */
function serializationId(records: readonly { name: string; data: Uint8Array }[]): string {
  const mask = (1n << 64n) - 1n;
  let nameHash = 0xcbf29ce484222325n;
  let crcHash = 0n;
  for (const r of records) {
    for (const b of Buffer.from(r.name, 'utf8')) nameHash = ((nameHash ^ BigInt(b)) * 0x100000001b3n) & mask;
    const crc = BigInt(zlibCrc(r.data));
    crcHash = (crcHash ^ (crc + 0x9e3779b9n + ((crcHash << 6n) & mask) + (crcHash >> 2n))) & mask;
  }
  return nameHash.toString().padStart(20, '0') + crcHash.toString().padStart(20, '0');
}

/** A head as `torch.save(nn.Linear(...).state_dict(keep_vars=True))` writes it to linear_head.pt. */
export function headToTorchBuffer(head: { readonly weight: Float32Array; readonly bias: Float32Array; readonly inDim: number; readonly outDim: number }): Buffer {
  return writeTorchStateDict(
    {
      weight: { shape: [head.outDim, head.inDim], data: head.weight },
      bias: { shape: [head.outDim], data: head.bias },
    },
    { archiveName: 'linear_head', asParameters: true, location: 'cpu' },
  );
}
