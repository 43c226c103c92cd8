/**
 * Builders of hostile torch files (zip bombs, state_dicts that name one tensor many times), shared by the
 * hostile-input tests and the fuzzers' regression corpus (test/fuzz/make-corpus.ts).
 */
import { constants as zlibConstants, crc32, deflateRawSync } from 'node:zlib';
import { PickleBuilder } from '../../tools/formats/pickle-builder';

export interface RawZipEntry {
  name: string;
  raw: Buffer;
  size: number;
  crc: number;
  method?: number;
}

/** A zip of deflated (method 8) entries (no ZIP64), enough for torch-shaped archives with bombs in them. */
export function deflatedZip(entries: RawZipEntry[]): Buffer {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const method = e.method ?? 8;
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(20, 4);
    lh.writeUInt16LE(0x0800, 6);
    lh.writeUInt16LE(method, 8);
    lh.writeUInt32LE(e.crc >>> 0, 14);
    lh.writeUInt32LE(e.raw.length, 18);
    lh.writeUInt32LE(e.size, 22);
    lh.writeUInt16LE(name.length, 26);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE(20, 4);
    ch.writeUInt16LE(20, 6);
    ch.writeUInt16LE(0x0800, 8);
    ch.writeUInt16LE(method, 10);
    ch.writeUInt32LE(e.crc >>> 0, 16);
    ch.writeUInt32LE(e.raw.length, 20);
    ch.writeUInt32LE(e.size, 24);
    ch.writeUInt16LE(name.length, 28);
    ch.writeUInt32LE(offset, 42);
    locals.push(lh, name, e.raw);
    central.push(ch, name);
    offset += 30 + name.length + e.raw.length;
  }
  const cd = Buffer.concat(central);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(entries.length, 8);
  eocd.writeUInt16LE(entries.length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, eocd]);
}

export const stored = (name: string, data: Buffer): RawZipEntry => ({ name, raw: data, size: data.length, crc: crc32(data), method: 0 });
export const deflated = (name: string, data: Buffer): RawZipEntry => ({ name, raw: deflateRawSync(data), size: data.length, crc: crc32(data) });

/**
 * `bytes` of zeros (a multiple of 1 MiB) as one raw deflate stream, made without holding them: 1 MiB pieces
 * compressed with a sync flush (non-final, byte-aligned blocks that only refer back inside themselves) repeated,
 * then an empty final block.
 */
export function zeroBomb(bytes: number): { raw: Buffer; size: number; crc: number } {
  const chunk = Buffer.alloc(1 << 20);
  const piece = deflateRawSync(chunk, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
  const parts: Buffer[] = [];
  let crc = 0;
  for (let done = 0; done < bytes; done += chunk.length) {
    parts.push(piece);
    crc = crc32(chunk, crc);
  }
  parts.push(deflateRawSync(Buffer.alloc(0)));
  return { raw: Buffer.concat(parts), size: bytes, crc };
}

/** A torch state_dict pickle naming `keys` each as the same [rows, cols] tensor of storage '0' (numel rows*cols). */
export function repeatedRefPickle(keys: string[], rows: number, cols: number): Buffer {
  const p = new PickleBuilder();
  p.proto(2);
  p.global('collections', 'OrderedDict').emptyTuple().reduce();
  p.mark();
  let tensorMemo = -1;
  keys.forEach((k, i) => {
    p.unicode(k);
    if (i === 0) {
      p.global('torch._utils', '_rebuild_tensor_v2');
      p.mark(); // the 6 arguments
      p.mark().unicode('storage').global('torch', 'FloatStorage').unicode('0').unicode('cpu').int(rows * cols).tupleOf(5);
      p.binpersid();
      p.int(0);
      p.int(rows).int(cols).tupleOf(2);
      p.int(cols).int(1).tupleOf(2);
      p.bool(false);
      p.global('collections', 'OrderedDict').emptyTuple().reduce();
      p.tupleOf(6).reduce();
      tensorMemo = p.memoize();
    } else {
      p.get(tensorMemo);
    }
  });
  p.setitems().stop();
  return p.toBuffer();
}

