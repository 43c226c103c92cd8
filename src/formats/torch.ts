/**
 * PyTorch `torch.save` zip archives (torch >= 1.6) holding a state_dict: the reader (the writer is test tooling, tools/formats/torch-writer.ts).
 *
 * Layout (see design/nla-protocol.md §5): a zip whose entries all live under one root folder (the file's
 * base name, e.g. `linear_head/`, or `archive/` for in-memory saves): `data.pkl` (the pickled dict),
 * `data/<key>` (raw little-endian storage bytes), `version`, and for recent torch versions `byteorder`,
 * `.format_version`, `.storage_alignment`, `.data/serialization_id`.
 *
 * The pickle is read by the restricted unpickler with exactly the globals a state_dict needs; storages are
 * resolved through persistent ids `('storage', <torch.XStorage>, key, location, numel)`.
 */
import { NlaError } from '../errors';
import {
  ORDERED_DICT,
  PyCallable,
  PyDict,
  PyOpaque,
  PyTuple,
  describeValue,
  unpickle,
  type PickleValue,
} from './pickle';
import { ZipArchive } from './zip';

export type TorchDType = 'float32' | 'float16' | 'bfloat16' | 'float64';

export interface TorchTensor {
  /** The dtype stored in the file; `data` is always converted to float32. */
  readonly dtype: TorchDType;
  readonly shape: number[];
  readonly data: Float32Array;
  /** The saved requires_grad flag (for nn.Parameter values, the parameter's). */
  readonly requiresGrad?: boolean;
  /** True when the value was an nn.Parameter (state_dict(keep_vars=True)). */
  readonly isParameter?: boolean;
}

export interface ReadTorchOptions {
  /** Shown in error messages. */
  readonly fileName?: string;
  /**
   * Bounds, all checked against the zip directory and the pickle's declarations before the data they cover is
   * inflated, copied or decoded (a 1 MB file can otherwise declare gigabytes: a deflate bomb, or a state_dict
   * that names one large tensor a thousand times).
   */
  readonly limits?: TorchReadLimits;
}

export interface TorchReadLimits {
  /** Largest `data.pkl` (default 64 MiB; a state_dict's pickle is a few hundred bytes per tensor). */
  readonly maxPickleBytes?: number;
  /** Most entries in the state_dict (default 100 000). */
  readonly maxTensors?: number;
  /** Largest single storage, in bytes (default 1 GiB). */
  readonly maxStorageBytes?: number;
  /** Most float32 values materialized over all tensors, a storage referenced twice counting twice (default 2^28). */
  readonly maxElements?: number;
}

/** torch stores records uncompressed; this only bounds what a (foreign) deflated entry may inflate to. */
const MAX_ENTRY_BYTES = 2 ** 31;
const DEFAULT_LIMITS: Required<TorchReadLimits> = {
  maxPickleBytes: 64 * 2 ** 20,
  maxTensors: 100_000,
  maxStorageBytes: 2 ** 30,
  maxElements: 2 ** 28,
};
/** The small text records (`byteorder`, `version`, …). */
const MAX_RECORD_BYTES = 4096;

/** One state_dict entry, described but not yet read: `read()` inflates/copies and decodes its data. */
export interface TorchTensorRef {
  readonly dtype: TorchDType;
  readonly shape: readonly number[];
  /** Elements of the tensor (product of the shape). */
  readonly numel: number;
  read(): TorchTensor;
}

const BYTES_PER_ELEMENT: Readonly<Record<TorchDType, number>> = { float32: 4, float16: 2, bfloat16: 2, float64: 8 };

const STORAGE_CLASS_NAMES: Readonly<Record<TorchDType, string>> = {
  float32: 'FloatStorage',
  float16: 'HalfStorage',
  bfloat16: 'BFloat16Storage',
  float64: 'DoubleStorage',
};

/** The class named in a persistent id, e.g. torch.FloatStorage. */
class StorageClass extends PyOpaque {
  readonly kind = 'torch storage class';
  constructor(readonly dtype: TorchDType) {
    super();
  }
}

/**
 * Integer/bool storage classes: inert markers, allowed so that a head saved with a non-float dtype is reported
 * as a wrong dtype (ERR_NLA_HEAD_INVALID) rather than as an unsafe pickle. No data of theirs is ever read.
 */
class NonFloatStorageClass extends PyOpaque {
  readonly kind = 'torch storage class';
  constructor(readonly className: string) {
    super();
  }
}
const NON_FLOAT_STORAGE_CLASSES = ['LongStorage', 'IntStorage', 'ShortStorage', 'CharStorage', 'ByteStorage', 'BoolStorage'];

/** A storage loaded through persistent_load: `data/<key>` of the archive. */
class StorageRef extends PyOpaque {
  readonly kind = 'torch storage';
  constructor(
    readonly key: string,
    readonly dtype: TorchDType,
    readonly location: string,
    readonly numel: number,
  ) {
    super();
  }
}

class TensorRef extends PyOpaque {
  readonly kind = 'torch tensor';
  constructor(
    readonly storage: StorageRef,
    readonly storageOffset: number,
    readonly shape: number[],
    readonly stride: number[],
    readonly requiresGrad: boolean,
    readonly isParameter: boolean,
  ) {
    super();
  }
}

function invalid(message: string): never {
  throw new NlaError('ERR_NLA_HEAD_INVALID', message);
}

function asInt(v: PickleValue | undefined, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) invalid(`${what} must be a non-negative integer, got ${describeValue(v ?? null)}`);
  return v;
}

function asIntTuple(v: PickleValue | undefined, what: string): number[] {
  if (!(v instanceof PyTuple)) invalid(`${what} must be a tuple, got ${describeValue(v ?? null)}`);
  if (v.items.length > 64) invalid(`${what} has too many dimensions (${v.items.length})`);
  return v.items.map((x, i) => asInt(x, `${what}[${i}]`));
}

function isEmptyHooks(v: PickleValue | undefined): boolean {
  return v instanceof PyDict && v.entries.size === 0;
}

/** torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]) */
const REBUILD_TENSOR_V2 = new PyCallable('torch._utils._rebuild_tensor_v2', (args) => {
  if (args.length !== 6 && args.length !== 7) invalid(`expected 6 or 7 arguments, got ${args.length}`);
  const storage = args[0];
  if (!(storage instanceof StorageRef)) invalid(`the first argument is ${describeValue(storage ?? null)}, not a storage`);
  const storageOffset = asInt(args[1], 'storage_offset');
  const shape = asIntTuple(args[2], 'size');
  const stride = asIntTuple(args[3], 'stride');
  if (shape.length !== stride.length) invalid(`size has ${shape.length} dims but stride has ${stride.length}`);
  const requiresGrad = args[4];
  if (typeof requiresGrad !== 'boolean') invalid('requires_grad must be a bool');
  // Backward hooks are never serialized by torch (always an empty OrderedDict); metadata (7th) is for
  // conjugate/negative views, which a plain state_dict does not have.
  if (!isEmptyHooks(args[5])) invalid('backward_hooks must be an empty OrderedDict');
  if (args.length === 7 && args[6] !== null && !(args[6] instanceof PyDict && args[6].entries.size === 0)) {
    invalid('tensor metadata (conjugate/negative bits) is not supported');
  }
  return new TensorRef(storage, storageOffset, shape, stride, requiresGrad, false);
});

/** torch._utils._rebuild_parameter(data, requires_grad, backward_hooks) */
const REBUILD_PARAMETER = new PyCallable('torch._utils._rebuild_parameter', (args) => {
  if (args.length !== 3) invalid(`expected 3 arguments, got ${args.length}`);
  return parameterFrom(args[0], args[1], args[2]);
});

/** torch._utils._rebuild_parameter_with_state(data, requires_grad, backward_hooks, state): state is ignored. */
const REBUILD_PARAMETER_WITH_STATE = new PyCallable('torch._utils._rebuild_parameter_with_state', (args) => {
  if (args.length !== 4) invalid(`expected 4 arguments, got ${args.length}`);
  return parameterFrom(args[0], args[1], args[2]);
});

function parameterFrom(data: PickleValue | undefined, requiresGrad: PickleValue | undefined, hooks: PickleValue | undefined): TensorRef {
  if (!(data instanceof TensorRef)) invalid(`the data of a Parameter is ${describeValue(data ?? null)}, not a tensor`);
  if (typeof requiresGrad !== 'boolean') invalid('requires_grad must be a bool');
  if (!isEmptyHooks(hooks)) invalid('backward_hooks must be an empty OrderedDict');
  return new TensorRef(data.storage, data.storageOffset, data.shape, data.stride, requiresGrad, true);
}

/**
 * The complete allowlist for state_dict pickles. Everything else (os.system, builtins.eval, …) is refused by
 * the unpickler before it can be used. `torch.UntypedStorage` / `torch.storage.*` are not needed by tensor
 * state_dicts (torch >= 2 still names the typed class, e.g. torch.FloatStorage, in persistent ids) and are
 * therefore not listed.
 */
export const STATE_DICT_GLOBALS: ReadonlyMap<string, PyCallable | PyOpaque> = new Map<string, PyCallable | PyOpaque>([
  ['collections OrderedDict', ORDERED_DICT],
  ['torch._utils _rebuild_tensor_v2', REBUILD_TENSOR_V2],
  ['torch._utils _rebuild_parameter', REBUILD_PARAMETER],
  ['torch._utils _rebuild_parameter_with_state', REBUILD_PARAMETER_WITH_STATE],
  ...(Object.entries(STORAGE_CLASS_NAMES) as [TorchDType, string][]).map(
    ([dtype, cls]) => [`torch ${cls}`, new StorageClass(dtype)] as [string, PyOpaque],
  ),
  ...NON_FLOAT_STORAGE_CLASSES.map((cls) => [`torch ${cls}`, new NonFloatStorageClass(cls)] as [string, PyOpaque]),
]);

/**
 * Reads a torch.save'd state_dict. Values must be (possibly Parameter-wrapped) contiguous row-major float
 * tensors; they are returned in file order with data converted to float32.
 */
export function readTorchStateDict(buf: Buffer, options: ReadTorchOptions = {}): Map<string, TorchTensor> {
  const refs = openTorchStateDict(buf, options);
  const maxElements = options.limits?.maxElements ?? DEFAULT_LIMITS.maxElements;
  let total = 0;
  for (const [key, ref] of refs) {
    total += ref.numel;
    if (total > maxElements) {
      invalid(`${options.fileName ?? 'torch file'}: its tensors hold more than ${maxElements} values in total (at '${key}'); refusing to materialize them`);
    }
  }
  const result = new Map<string, TorchTensor>();
  for (const [key, ref] of refs) result.set(key, ref.read());
  return result;
}

/**
 * Parses a torch.save'd state_dict without reading any tensor data: every entry is checked (a contiguous
 * float tensor that fits its storage, whose archive entry has the right declared size) and returned as a
 * reference whose `read()` materializes it. Callers that know what they expect check shapes first.
 */
export function openTorchStateDict(buf: Buffer, options: ReadTorchOptions = {}): Map<string, TorchTensorRef> {
  const fileName = options.fileName ?? 'torch file';
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  if (!Buffer.isBuffer(buf)) throw new NlaError('ERR_NLA_INVALID_ARG', `${fileName}: expected a Buffer`);
  if (buf.length >= 2 && buf[0] === 0x80 && buf[1] !== undefined && buf[1] <= 5) {
    invalid(`${fileName}: this is a legacy (pre-1.6) torch.save file, which is not supported; re-save it with torch >= 1.6 (the default zip format)`);
  }
  const zip = ZipArchive.open(buf, {
    label: fileName,
    errorCode: 'ERR_NLA_HEAD_INVALID',
    maxEntrySize: Math.min(MAX_ENTRY_BYTES, Math.max(limits.maxStorageBytes, limits.maxPickleBytes, MAX_RECORD_BYTES)),
  });
  const first = zip.entries[0];
  if (first === undefined) invalid(`${fileName}: the archive is empty`);
  const slash = first.name.indexOf('/');
  if (slash <= 0) invalid(`${fileName}: entries are not inside a root folder; not a torch.save archive`);
  const root = first.name.slice(0, slash + 1);
  for (const e of zip.entries) {
    if (!e.name.startsWith(root)) invalid(`${fileName}: entry '${e.name}' is outside the root folder '${root}'`);
  }
  const pklName = `${root}data.pkl`;
  if (!zip.has(pklName)) {
    if (zip.has(`${root}constants.pkl`)) invalid(`${fileName}: this is a TorchScript archive (torch.jit.save), not a state_dict`);
    invalid(`${fileName}: '${pklName}' is missing; not a torch.save archive`);
  }
  const pklEntry = zip.get(pklName)!;
  if (pklEntry.uncompressedSize > limits.maxPickleBytes) {
    invalid(`${fileName}: '${pklName}' is ${pklEntry.uncompressedSize} bytes; a state_dict pickle is at most ${limits.maxPickleBytes}`);
  }
  const byteorderName = `${root}byteorder`;
  if (zip.has(byteorderName)) {
    if (zip.get(byteorderName)!.uncompressedSize > MAX_RECORD_BYTES) invalid(`${fileName}: '${byteorderName}' is too large`);
    const order = zip.read(byteorderName).toString('latin1');
    if (order !== 'little') invalid(`${fileName}: byteorder is '${order}'; only little-endian files are supported`);
  }

  const storages = new Map<string, StorageRef>();
  const persistentLoad = (pid: PickleValue): PickleValue => {
    if (!(pid instanceof PyTuple) || pid.items.length !== 5 || pid.items[0] !== 'storage') {
      invalid(`persistent id ${describeValue(pid)} is not ('storage', type, key, location, numel)`);
    }
    const [, cls, key, location, numelValue] = pid.items;
    if (cls instanceof NonFloatStorageClass)
      invalid(`a tensor is stored as torch.${cls.className}; only float32/float16/bfloat16/float64 tensors are supported`);
    if (!(cls instanceof StorageClass)) invalid(`storage type ${describeValue(cls ?? null)} is not a supported torch storage class`);
    if (typeof key !== 'string' || !/^[0-9A-Za-z_.-]{1,64}$/.test(key)) invalid('storage key must be a short string of [0-9A-Za-z_.-]');
    if (typeof location !== 'string') invalid('storage location must be a string');
    const numel = asInt(numelValue, 'storage numel');
    const existing = storages.get(key);
    if (existing !== undefined) {
      if (existing.dtype !== cls.dtype || existing.numel !== numel) invalid(`storage '${key}' is declared twice with different types or sizes`);
      return existing;
    }
    const ref = new StorageRef(key, cls.dtype, location, numel);
    storages.set(key, ref);
    return ref;
  };
  const stateDict = unpickle(zip.read(pklName), {
    globals: STATE_DICT_GLOBALS,
    persistentLoad,
    label: `${fileName}: ${pklName}`,
  });
  if (!(stateDict instanceof PyDict)) invalid(`${fileName}: the pickle holds ${describeValue(stateDict)}, not a state_dict`);

  if (stateDict.entries.size > limits.maxTensors) {
    invalid(`${fileName}: the state_dict has ${stateDict.entries.size} entries, more than the ${limits.maxTensors} accepted`);
  }

  // Storage bytes are read (inflated, CRC-checked) once, on first use, and shared by the tensors viewing them.
  const storageBytes = new Map<string, Buffer>();
  const readStorage = (s: StorageRef, entryName: string): Buffer => {
    let bytes = storageBytes.get(s.key);
    if (bytes === undefined) {
      bytes = zip.read(entryName);
      storageBytes.set(s.key, bytes);
    }
    return bytes;
  };
  const result = new Map<string, TorchTensorRef>();
  for (const [key, value] of stateDict.entries) {
    if (typeof key !== 'string') invalid(`${fileName}: state_dict key ${String(key)} is not a string`);
    if (!(value instanceof TensorRef)) invalid(`${fileName}: state_dict entry '${key}' is ${describeValue(value)}, not a tensor`);
    const s = value.storage;
    const entryName = `${root}data/${s.key}`;
    const entry = zip.get(entryName);
    if (entry === undefined) invalid(`${fileName}: storage '${entryName}' of tensor '${key}' is missing`);
    const expected = s.numel * BYTES_PER_ELEMENT[s.dtype];
    if (!Number.isSafeInteger(expected) || expected > limits.maxStorageBytes) {
      invalid(`${fileName}: storage '${entryName}' declares ${s.numel} x ${s.dtype}, more than the ${limits.maxStorageBytes} bytes accepted`);
    }
    // The directory's size is what inflating may produce at most (the reader enforces it): check it first.
    if (entry.uncompressedSize !== expected) {
      invalid(`${fileName}: storage '${entryName}' has ${entry.uncompressedSize} bytes, expected ${expected} (${s.numel} x ${s.dtype})`);
    }
    const numel = checkLayout(key, value, fileName);
    result.set(key, {
      dtype: s.dtype,
      shape: [...value.shape],
      numel,
      read: () => materialize(value, readStorage(s, entryName), numel),
    });
  }
  return result;
}

/** Checks a tensor's shape, contiguity and extent against its storage; returns its element count. */
function checkLayout(key: string, t: TensorRef, fileName: string): number {
  const what = `${fileName}: tensor '${key}'`;
  let numel = 1;
  for (const d of t.shape) {
    numel *= d;
    if (!Number.isSafeInteger(numel)) invalid(`${what} is too large`);
  }
  // Contiguous row-major: dims of size 1 may carry any stride (torch's is_contiguous ignores them).
  let expectedStride = 1;
  for (let i = t.shape.length - 1; i >= 0; i--) {
    const size = t.shape[i]!;
    if (size !== 1 && t.stride[i] !== expectedStride && numel !== 0) {
      invalid(`${what} is not contiguous (shape [${t.shape.join(', ')}], stride [${t.stride.join(', ')}]); save tensor.contiguous() instead`);
    }
    expectedStride *= size;
  }
  if (t.storageOffset + numel > t.storage.numel) {
    invalid(`${what} (offset ${t.storageOffset}, ${numel} elements) does not fit its storage of ${t.storage.numel} elements`);
  }
  return numel;
}

function materialize(t: TensorRef, bytes: Buffer, numel: number): TorchTensor {
  const elem = BYTES_PER_ELEMENT[t.storage.dtype];
  const data = decodeToFloat32(bytes, t.storageOffset * elem, numel, t.storage.dtype);
  return {
    dtype: t.storage.dtype,
    shape: [...t.shape],
    data,
    requiresGrad: t.requiresGrad,
    isParameter: t.isParameter,
  };
}

export const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function decodeToFloat32(bytes: Buffer, byteOffset: number, count: number, dtype: TorchDType): Float32Array {
  const out = new Float32Array(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset + byteOffset, count * BYTES_PER_ELEMENT[dtype]);
  switch (dtype) {
    case 'float32':
      if (LITTLE_ENDIAN_HOST) new Uint8Array(out.buffer).set(bytes.subarray(byteOffset, byteOffset + count * 4));
      else for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
      break;
    case 'float64':
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(i * 8, true);
      break;
    case 'float16':
      for (let i = 0; i < count; i++) out[i] = f16BitsToF32(view.getUint16(i * 2, true));
      break;
    case 'bfloat16':
      for (let i = 0; i < count; i++) out[i] = bf16BitsToF32(view.getUint16(i * 2, true));
      break;
  }
  return out;
}

/** IEEE half → float (exact). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

const scratch = new DataView(new ArrayBuffer(4));

/** bfloat16 → float (exact). */
export function bf16BitsToF32(b: number): number {
  scratch.setUint32(0, (b & 0xffff) << 16);
  return scratch.getFloat32(0);
}
