/**
 * A small, defensive ZIP reader, enough for PyTorch `.pt` archives (the torch-style writer is test tooling:
 * tools/formats/zip-writer.ts).
 *
 * Reader: finds the end-of-central-directory record (also behind an archive comment), follows a ZIP64
 * locator when present, reads the central directory, cross-checks each local header, and extracts stored
 * (method 0) and deflated (method 8) entries with a CRC-32 check. Every offset and size is checked against
 * the buffer before it is used; any inconsistency is an `NlaError` (never a RangeError or a zlib error).
 *
 * Writer: stored entries laid out the way PyTorch's `PyTorchStreamWriter` (miniz) lays them out, so that a
 * file written here is byte-for-byte what torch.save writes for the same records: each local header carries
 * an extra field `"FB" <u16 len> "ZZZ…"` that pads the entry's data to a multiple of `alignment` (64, torch's
 * `.storage_alignment`), local headers have zero CRC/sizes with general-purpose flags 0x0808 (UTF-8 names, a
 * data descriptor follows the data), DOS time/date 0, and the archive always ends with a ZIP64
 * end-of-central-directory record and locator before the classic one.
 */
import { crc32 as zlibCrc32, inflateRawSync } from 'node:zlib';
import { constants as bufferConstants } from 'node:buffer';
import { NlaError, type NlaErrorCode } from '../errors';

export const SIG_LOCAL = 0x04034b50;
export const SIG_CENTRAL = 0x02014b50;
export const SIG_EOCD = 0x06054b50;
export const SIG_EOCD64 = 0x06064b50;
export const SIG_EOCD64_LOCATOR = 0x07064b50;
export const SIG_DATA_DESCRIPTOR = 0x08074b50;

export const LOCAL_HEADER_SIZE = 30;
export const CENTRAL_HEADER_SIZE = 46;
export const EOCD_SIZE = 22;
export const EOCD64_SIZE = 56;
export const EOCD64_LOCATOR_SIZE = 20;
const MAX_COMMENT = 0xffff;
export const U16_MAX = 0xffff;
export const U32_MAX = 0xffffffff;

const FLAG_ENCRYPTED = 0x0001;
export const FLAG_DATA_DESCRIPTOR = 0x0008;
export const FLAG_UTF8 = 0x0800;
const FLAG_STRONG_ENCRYPTION = 0x0040;

export const ZIP_METHOD_STORED = 0;
export const ZIP_METHOD_DEFLATE = 8;

/** CRC-32 (IEEE 802.3), as used by ZIP. */
export function crc32(data: Uint8Array): number {
  return zlibCrc32(data) >>> 0;
}

/** One file of the archive, as described by its central-directory record (validated). */
export interface ZipEntry {
  readonly name: string;
  readonly method: number;
  readonly flags: number;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  readonly localHeaderOffset: number;
  /** Absolute offset of the entry's (possibly compressed) data in the archive buffer. */
  readonly dataOffset: number;
}

export interface ZipReadOptions {
  /** Shown in error messages, e.g. the file name. */
  readonly label?: string;
  /** Error code used for a malformed archive (default ERR_NLA_HEAD_INVALID). */
  readonly errorCode?: NlaErrorCode;
  /** Largest uncompressed entry accepted (default: the largest Buffer); bounds deflate bombs. */
  readonly maxEntrySize?: number;
}

/** A parsed ZIP archive over a Buffer. Entries are extracted lazily by `read`. */
export class ZipArchive {
  readonly entries: readonly ZipEntry[];
  private readonly byName: ReadonlyMap<string, ZipEntry>;
  private readonly buf: Buffer;
  private readonly label: string;
  private readonly errorCode: NlaErrorCode;

  private constructor(buf: Buffer, entries: ZipEntry[], label: string, errorCode: NlaErrorCode) {
    this.buf = buf;
    this.entries = entries;
    this.byName = new Map(entries.map((e) => [e.name, e]));
    this.label = label;
    this.errorCode = errorCode;
  }

  /** Parses the archive's directory. Throws NlaError(options.errorCode) when the archive is malformed. */
  static open(buf: Buffer, options: ZipReadOptions = {}): ZipArchive {
    const label = options.label ?? 'zip archive';
    const errorCode = options.errorCode ?? 'ERR_NLA_HEAD_INVALID';
    if (!Buffer.isBuffer(buf)) {
      throw new NlaError('ERR_NLA_INVALID_ARG', `${label}: expected a Buffer`);
    }
    const maxEntrySize = Math.min(options.maxEntrySize ?? bufferConstants.MAX_LENGTH, bufferConstants.MAX_LENGTH);
    const entries = new DirectoryParser(buf, label, errorCode, maxEntrySize).parse();
    return new ZipArchive(buf, entries, label, errorCode);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  get(name: string): ZipEntry | undefined {
    return this.byName.get(name);
  }

  /**
   * The uncompressed bytes of an entry, CRC-checked. For stored entries this is a view into the archive
   * buffer (no copy): do not modify it.
   */
  read(nameOrEntry: string | ZipEntry): Buffer {
    const entry = typeof nameOrEntry === 'string' ? this.byName.get(nameOrEntry) : nameOrEntry;
    if (entry === undefined) {
      throw new NlaError(this.errorCode, `${this.label}: no entry named '${String(nameOrEntry)}'`);
    }
    const raw = this.buf.subarray(entry.dataOffset, entry.dataOffset + entry.compressedSize);
    let data: Buffer;
    if (entry.method === ZIP_METHOD_STORED) {
      data = raw;
    } else {
      try {
        data = inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.uncompressedSize) });
      } catch (err) {
        throw new NlaError(this.errorCode, `${this.label}: entry '${entry.name}' has corrupt deflate data`, {
          cause: err,
        });
      }
    }
    if (data.length !== entry.uncompressedSize) {
      throw new NlaError(
        this.errorCode,
        `${this.label}: entry '${entry.name}' inflates to ${data.length} bytes, the directory says ${entry.uncompressedSize}`,
      );
    }
    const actual = crc32(data);
    if (actual !== entry.crc32) {
      throw new NlaError(
        this.errorCode,
        `${this.label}: CRC-32 mismatch in entry '${entry.name}' (stored ${hex32(entry.crc32)}, computed ${hex32(actual)}); the file is corrupt`,
      );
    }
    return data;
  }
}

class DirectoryParser {
  constructor(
    private readonly buf: Buffer,
    private readonly label: string,
    private readonly errorCode: NlaErrorCode,
    private readonly maxEntrySize: number,
  ) {}

  private fail(message: string): never {
    throw new NlaError(this.errorCode, `${this.label}: ${message}`);
  }

  /** Checks that [offset, offset+length) lies inside the buffer. */
  private need(offset: number, length: number, what: string): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      this.fail(`${what} has an invalid offset or size`);
    }
    if (offset + length > this.buf.length) {
      this.fail(`${what} at offset ${offset} (+${length} bytes) runs past the end of the ${this.buf.length}-byte file (truncated?)`);
    }
  }

  private u64(offset: number, what: string): number {
    const v = this.buf.readBigUInt64LE(offset);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} is too large (${v})`);
    return Number(v);
  }

  parse(): ZipEntry[] {
    const buf = this.buf;
    if (buf.length < EOCD_SIZE) this.fail(`too short to be a ZIP archive (${buf.length} bytes)`);
    const eocd = this.findEocd();
    const diskNumber = buf.readUInt16LE(eocd + 4);
    const cdDisk = buf.readUInt16LE(eocd + 6);
    let entriesOnDisk = buf.readUInt16LE(eocd + 8);
    let entryCount = buf.readUInt16LE(eocd + 10);
    let cdSize = buf.readUInt32LE(eocd + 12);
    let cdOffset = buf.readUInt32LE(eocd + 16);

    // ZIP64: a locator sits right before the classic record; torch always writes one.
    const locator = eocd - EOCD64_LOCATOR_SIZE;
    const hasLocator = locator >= 0 && buf.readUInt32LE(locator) === SIG_EOCD64_LOCATOR;
    const needsZip64 =
      entriesOnDisk === U16_MAX || entryCount === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX;
    if (hasLocator) {
      const eocd64 = this.u64(locator + 8, 'ZIP64 end-of-central-directory offset');
      if (buf.readUInt32LE(locator + 16) > 1) this.fail('multi-disk (spanned) archives are not supported');
      this.need(eocd64, EOCD64_SIZE, 'ZIP64 end-of-central-directory record');
      if (eocd64 + EOCD64_SIZE > locator) this.fail('ZIP64 end-of-central-directory record overlaps its locator');
      if (buf.readUInt32LE(eocd64) !== SIG_EOCD64) this.fail(`bad ZIP64 end-of-central-directory signature at offset ${eocd64}`);
      if (buf.readUInt32LE(eocd64 + 16) !== 0 || buf.readUInt32LE(eocd64 + 20) !== 0) {
        this.fail('multi-disk (spanned) archives are not supported');
      }
      entriesOnDisk = this.u64(eocd64 + 24, 'ZIP64 entry count');
      entryCount = this.u64(eocd64 + 32, 'ZIP64 entry count');
      cdSize = this.u64(eocd64 + 40, 'ZIP64 central directory size');
      cdOffset = this.u64(eocd64 + 48, 'ZIP64 central directory offset');
    } else {
      if (needsZip64) this.fail('the end-of-central-directory record asks for ZIP64 but no ZIP64 locator is present');
      if (diskNumber !== 0 || cdDisk !== 0) this.fail('multi-disk (spanned) archives are not supported');
    }
    if (entriesOnDisk !== entryCount) this.fail('multi-disk (spanned) archives are not supported');
    this.need(cdOffset, cdSize, 'central directory');
    if (cdOffset + cdSize > (hasLocator ? locator : eocd)) {
      this.fail('central directory overlaps the end-of-central-directory record');
    }
    // Each central record is at least 46 bytes: reject absurd counts before allocating anything.
    if (entryCount > Math.floor(cdSize / CENTRAL_HEADER_SIZE)) {
      this.fail(`central directory of ${cdSize} bytes cannot hold ${entryCount} entries`);
    }

    const entries: ZipEntry[] = [];
    const seen = new Set<string>();
    let p = cdOffset;
    const cdEnd = cdOffset + cdSize;
    for (let i = 0; i < entryCount; i++) {
      const entry = this.readCentralEntry(p, cdEnd, cdOffset, i);
      if (seen.has(entry.entry.name)) this.fail(`duplicate entry name '${entry.entry.name}'`);
      seen.add(entry.entry.name);
      entries.push(entry.entry);
      p = entry.next;
    }
    if (p !== cdEnd) this.fail(`central directory size mismatch (${cdSize} declared, ${p - cdOffset} used)`);
    return entries;
  }

  private findEocd(): number {
    const buf = this.buf;
    const lowest = Math.max(0, buf.length - EOCD_SIZE - MAX_COMMENT);
    let loose = -1;
    for (let p = buf.length - EOCD_SIZE; p >= lowest; p--) {
      if (buf.readUInt32LE(p) !== SIG_EOCD) continue;
      const commentLength = buf.readUInt16LE(p + 20);
      if (p + EOCD_SIZE + commentLength === buf.length) return p;
      // Tolerate trailing junk after the comment, but prefer a record that ends exactly at the end.
      if (loose < 0 && p + EOCD_SIZE + commentLength < buf.length) loose = p;
    }
    if (loose >= 0) return loose;
    return this.fail('no end-of-central-directory record found: not a ZIP archive, or truncated');
  }

  private readCentralEntry(p: number, cdEnd: number, cdOffset: number, index: number): { entry: ZipEntry; next: number } {
    const buf = this.buf;
    const what = `central directory entry #${index}`;
    if (p + CENTRAL_HEADER_SIZE > cdEnd) this.fail(`${what} runs past the end of the central directory`);
    if (buf.readUInt32LE(p) !== SIG_CENTRAL) this.fail(`bad signature for ${what} at offset ${p}`);
    const flags = buf.readUInt16LE(p + 8);
    const method = buf.readUInt16LE(p + 10);
    const crc = buf.readUInt32LE(p + 16);
    let compressedSize = buf.readUInt32LE(p + 20);
    let uncompressedSize = buf.readUInt32LE(p + 24);
    const nameLength = buf.readUInt16LE(p + 28);
    const extraLength = buf.readUInt16LE(p + 30);
    const commentLength = buf.readUInt16LE(p + 32);
    let diskStart = buf.readUInt16LE(p + 34);
    let localHeaderOffset = buf.readUInt32LE(p + 42);
    const next = p + CENTRAL_HEADER_SIZE + nameLength + extraLength + commentLength;
    if (next > cdEnd) this.fail(`${what} (name/extra/comment) runs past the end of the central directory`);
    const nameBytes = buf.subarray(p + CENTRAL_HEADER_SIZE, p + CENTRAL_HEADER_SIZE + nameLength);
    const name = nameBytes.toString((flags & FLAG_UTF8) !== 0 ? 'utf8' : 'latin1');
    const label = `entry '${name}'`;

    // ZIP64 extended information: only the fields whose classic value is saturated are present, in order.
    const extraStart = p + CENTRAL_HEADER_SIZE + nameLength;
    const zip64 = this.findExtraField(extraStart, extraLength, 0x0001, label);
    if (zip64 !== undefined) {
      let q = zip64.offset;
      const end = zip64.offset + zip64.length;
      const take = (bytes: number, field: string): number => {
        if (q + bytes > end) this.fail(`${label}: ZIP64 extra field is too short for ${field}`);
        const v = bytes === 8 ? this.u64(q, `${label} ${field}`) : buf.readUInt32LE(q);
        q += bytes;
        return v;
      };
      if (uncompressedSize === U32_MAX) uncompressedSize = take(8, 'uncompressed size');
      if (compressedSize === U32_MAX) compressedSize = take(8, 'compressed size');
      if (localHeaderOffset === U32_MAX) localHeaderOffset = take(8, 'local header offset');
      if (diskStart === U16_MAX) diskStart = take(4, 'disk number');
    } else if (uncompressedSize === U32_MAX || compressedSize === U32_MAX || localHeaderOffset === U32_MAX) {
      this.fail(`${label}: sizes are saturated but there is no ZIP64 extra field`);
    }

    if (diskStart !== 0) this.fail(`${label}: multi-disk (spanned) archives are not supported`);
    if ((flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION)) !== 0) this.fail(`${label} is encrypted`);
    if (method !== ZIP_METHOD_STORED && method !== ZIP_METHOD_DEFLATE) {
      this.fail(`${label} uses compression method ${method}; only stored (0) and deflate (8) are supported`);
    }
    if (method === ZIP_METHOD_STORED && compressedSize !== uncompressedSize) {
      this.fail(`${label} is stored but its compressed size (${compressedSize}) differs from its size (${uncompressedSize})`);
    }
    if (uncompressedSize > this.maxEntrySize) this.fail(`${label} is too large (${uncompressedSize} bytes; the limit is ${this.maxEntrySize})`);

    // Local header: its name must agree with the central directory; its sizes may be zero (data descriptor).
    this.need(localHeaderOffset, LOCAL_HEADER_SIZE, `local header of ${label}`);
    if (buf.readUInt32LE(localHeaderOffset) !== SIG_LOCAL) {
      this.fail(`bad local header signature for ${label} at offset ${localHeaderOffset}`);
    }
    const localMethod = buf.readUInt16LE(localHeaderOffset + 8);
    const localNameLength = buf.readUInt16LE(localHeaderOffset + 26);
    const localExtraLength = buf.readUInt16LE(localHeaderOffset + 28);
    this.need(localHeaderOffset + LOCAL_HEADER_SIZE, localNameLength + localExtraLength, `local header of ${label}`);
    const localName = buf.subarray(localHeaderOffset + LOCAL_HEADER_SIZE, localHeaderOffset + LOCAL_HEADER_SIZE + localNameLength);
    if (localMethod !== method || !localName.equals(nameBytes)) {
      this.fail(`local header of ${label} disagrees with the central directory`);
    }
    const dataOffset = localHeaderOffset + LOCAL_HEADER_SIZE + localNameLength + localExtraLength;
    this.need(dataOffset, compressedSize, `data of ${label}`);
    if (dataOffset + compressedSize > cdOffset) this.fail(`data of ${label} overlaps the central directory`);

    return {
      entry: { name, method, flags, crc32: crc, compressedSize, uncompressedSize, localHeaderOffset, dataOffset },
      next,
    };
  }

  private findExtraField(start: number, length: number, id: number, label: string): { offset: number; length: number } | undefined {
    const buf = this.buf;
    let q = start;
    const end = start + length;
    while (q + 4 <= end) {
      const fieldId = buf.readUInt16LE(q);
      const fieldLength = buf.readUInt16LE(q + 2);
      if (q + 4 + fieldLength > end) this.fail(`${label}: extra field 0x${fieldId.toString(16)} runs past the extra data`);
      if (fieldId === id) return { offset: q + 4, length: fieldLength };
      q += 4 + fieldLength;
    }
    return undefined;
  }
}

function hex32(v: number): string {
  return '0x' + (v >>> 0).toString(16).padStart(8, '0');
}
