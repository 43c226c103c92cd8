/**
 * A small, independent GGUF header walker for tests that corrupt files on purpose: it finds the file offset
 * of each tensor-info field (e.g. the u32 type id) and of each metadata value, without using the engine or
 * the writer under test.
 */
export interface WalkedTensor {
  name: string;
  ne: number[];
  type: number;
  /** File offset of the u32 type id in the tensor-info record. */
  typeOffset: number;
  /** Offset of the data relative to the data section. */
  offset: number;
}

export interface WalkedKv {
  key: string;
  type: number;
  /** File offset of the value (after the u32 value type). */
  valueOffset: number;
}

export interface WalkedGguf {
  version: number;
  kvs: WalkedKv[];
  tensors: WalkedTensor[];
  /** End of the last tensor-info record (before the alignment padding). */
  headerEnd: number;
}

/** GGUF value type → byte size for the fixed-size scalars (8 = string and 9 = array are handled apart). */
const SCALAR_SIZE: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

export function walkGguf(buf: Buffer): WalkedGguf {
  let o = 0;
  const u32 = (): number => {
    const v = buf.readUInt32LE(o);
    o += 4;
    return v;
  };
  const u64 = (): number => {
    const v = Number(buf.readBigUInt64LE(o));
    o += 8;
    return v;
  };
  const str = (): string => {
    const n = u64();
    const s = buf.toString('utf8', o, o + n);
    o += n;
    return s;
  };
  const skipValue = (t: number): void => {
    if (t === 8) {
      str();
    } else if (t === 9) {
      const itemType = u32();
      const n = u64();
      if (itemType !== 8 && itemType !== 9) o += n * SCALAR_SIZE[itemType]!;
      else for (let i = 0; i < n; i++) skipValue(itemType);
    } else {
      const size = SCALAR_SIZE[t];
      if (size === undefined) throw new Error(`walkGguf: unknown value type ${t} at offset ${o}`);
      o += size;
    }
  };
  if (u32() !== 0x46554747) throw new Error('walkGguf: not a GGUF file');
  const version = u32();
  const nTensors = u64();
  const nKv = u64();
  const kvs: WalkedKv[] = [];
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const type = u32();
    kvs.push({ key, type, valueOffset: o });
    skipValue(type);
  }
  const tensors: WalkedTensor[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nd = u32();
    const ne: number[] = [];
    for (let k = 0; k < nd; k++) ne.push(u64());
    const typeOffset = o;
    const type = u32();
    const offset = u64();
    tensors.push({ name, ne, type, typeOffset, offset });
  }
  return { version, kvs, tensors, headerEnd: o };
}
