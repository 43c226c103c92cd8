/** The torch-style ZIP writer (test tooling): stored entries in PyTorchStreamWriter's layout (see src/formats/zip.ts). */
import { NlaError } from '../../src/errors';
import {
  crc32,
  SIG_LOCAL,
  SIG_CENTRAL,
  SIG_EOCD,
  SIG_EOCD64,
  SIG_EOCD64_LOCATOR,
  SIG_DATA_DESCRIPTOR,
  LOCAL_HEADER_SIZE,
  CENTRAL_HEADER_SIZE,
  EOCD_SIZE,
  EOCD64_SIZE,
  EOCD64_LOCATOR_SIZE,
  U16_MAX,
  U32_MAX,
  FLAG_DATA_DESCRIPTOR,
  FLAG_UTF8,
  ZIP_METHOD_STORED,
} from '../../src/formats/zip';

// ---------------------------------------------------------------------------------------------------------
// Writer

export interface ZipWriteEntry {
  readonly name: string;
  readonly data: Uint8Array;
}

export interface ZipWriteOptions {
  /** Each entry's data starts at a multiple of this (torch: 64). 1 disables padding. */
  readonly alignment?: number;
}

/**
 * Writes stored entries in PyTorch's layout (see the file comment). ZIP64 sizes/offsets are not produced:
 * entries and the archive must stay below 4 GiB.
 */
export function writeZip(entries: readonly ZipWriteEntry[], options: ZipWriteOptions = {}): Buffer {
  const alignment = options.alignment ?? 64;
  if (!Number.isInteger(alignment) || alignment < 1 || alignment > 0x8000) {
    throw new NlaError('ERR_NLA_INVALID_ARG', `writeZip: alignment must be an integer in [1, 32768], got ${alignment}`);
  }
  const names = new Set<string>();
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let cursor = 0;
  for (const entry of entries) {
    const nameBytes = Buffer.from(entry.name, 'utf8');
    if (nameBytes.length === 0 || nameBytes.length > U16_MAX) {
      throw new NlaError('ERR_NLA_INVALID_ARG', `writeZip: invalid entry name '${entry.name}'`);
    }
    if (names.has(entry.name)) throw new NlaError('ERR_NLA_INVALID_ARG', `writeZip: duplicate entry name '${entry.name}'`);
    names.add(entry.name);
    const size = entry.data.length;
    // Like torch's getPadding(): the 4-byte "FB" extra header is always present, padding may be empty.
    const start = cursor + LOCAL_HEADER_SIZE + nameBytes.length + 4;
    const paddingSize = (alignment - (start % alignment)) % alignment;
    const crc = crc32(entry.data);
    const local = Buffer.alloc(LOCAL_HEADER_SIZE);
    local.writeUInt32LE(SIG_LOCAL, 0);
    local.writeUInt16LE(0, 4); // version needed (miniz writes 0 here)
    local.writeUInt16LE(FLAG_DATA_DESCRIPTOR | FLAG_UTF8, 6);
    local.writeUInt16LE(ZIP_METHOD_STORED, 8);
    // time, date, crc, sizes stay 0: the data descriptor carries crc and sizes.
    local.writeUInt16LE(nameBytes.length, 26);
    local.writeUInt16LE(4 + paddingSize, 28);
    const extra = Buffer.alloc(4 + paddingSize, 'Z'.charCodeAt(0));
    extra.write('FB', 0, 'latin1');
    extra.writeUInt16LE(paddingSize, 2);
    const descriptor = Buffer.alloc(16);
    descriptor.writeUInt32LE(SIG_DATA_DESCRIPTOR, 0);
    descriptor.writeUInt32LE(crc, 4);
    descriptor.writeUInt32LE(size, 8);
    descriptor.writeUInt32LE(size, 12);
    const localOffset = cursor;
    parts.push(local, nameBytes, extra, Buffer.from(entry.data.buffer, entry.data.byteOffset, size), descriptor);
    cursor += LOCAL_HEADER_SIZE + nameBytes.length + extra.length + size + descriptor.length;
    if (cursor > U32_MAX) throw new NlaError('ERR_NLA_INVALID_ARG', 'writeZip: archives of 4 GiB or more are not supported');

    const record = Buffer.alloc(CENTRAL_HEADER_SIZE);
    record.writeUInt32LE(SIG_CENTRAL, 0);
    // version made by 0, version needed 0 (as miniz writes them for torch)
    record.writeUInt16LE(FLAG_DATA_DESCRIPTOR | FLAG_UTF8, 8);
    record.writeUInt16LE(ZIP_METHOD_STORED, 10);
    record.writeUInt32LE(crc, 16);
    record.writeUInt32LE(size, 20);
    record.writeUInt32LE(size, 24);
    record.writeUInt16LE(nameBytes.length, 28);
    record.writeUInt32LE(localOffset, 42);
    central.push(record, nameBytes);
  }
  const cdOffset = cursor;
  const cdSize = central.reduce((n, b) => n + b.length, 0);
  const eocd64Offset = cdOffset + cdSize;
  const tail = Buffer.alloc(EOCD64_SIZE + EOCD64_LOCATOR_SIZE + EOCD_SIZE);
  tail.writeUInt32LE(SIG_EOCD64, 0);
  tail.writeBigUInt64LE(BigInt(EOCD64_SIZE - 12), 4);
  tail.writeUInt16LE(0x031e, 12); // made by: Unix, spec 3.0 (miniz)
  tail.writeUInt16LE(0x002d, 14); // needed: 4.5 (ZIP64)
  tail.writeBigUInt64LE(BigInt(entries.length), 24);
  tail.writeBigUInt64LE(BigInt(entries.length), 32);
  tail.writeBigUInt64LE(BigInt(cdSize), 40);
  tail.writeBigUInt64LE(BigInt(cdOffset), 48);
  const loc = EOCD64_SIZE;
  tail.writeUInt32LE(SIG_EOCD64_LOCATOR, loc);
  tail.writeBigUInt64LE(BigInt(eocd64Offset), loc + 8);
  tail.writeUInt32LE(1, loc + 16);
  const end = loc + EOCD64_LOCATOR_SIZE;
  if (entries.length > U16_MAX) throw new NlaError('ERR_NLA_INVALID_ARG', 'writeZip: too many entries');
  tail.writeUInt32LE(SIG_EOCD, end);
  tail.writeUInt16LE(entries.length, end + 8);
  tail.writeUInt16LE(entries.length, end + 10);
  tail.writeUInt32LE(cdSize, end + 12);
  tail.writeUInt32LE(cdOffset, end + 16);
  return Buffer.concat([...parts, ...central, tail]);
}
