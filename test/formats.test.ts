/**
 * ZIP, pickle, torch and safetensors formats. Genuine files in test/fixtures/torch were made by torch
 * 1.13.1 (Debian python3-torch) with make_fixtures.py; expected.json holds the values torch read back.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { NlaError } from '../src/errors';
import { ZipArchive, crc32 } from '../src/formats/zip';
import { writeZip } from '../tools/formats/zip-writer';
import { PyBytes, PyDict, PyTuple, unpickle, type PickleValue } from '../src/formats/pickle';
import {
  STATE_DICT_GLOBALS,
  bf16BitsToF32,
  f16BitsToF32,
  readTorchStateDict,
} from '../src/formats/torch';
import { writeTorchStateDict } from '../tools/formats/torch-writer';
import { f32ToBf16Bits, f32ToF16Bits, writeSafetensors } from '../tools/formats/safetensors-writer';

const FIXTURES = path.join(__dirname, 'fixtures', 'torch');
const fixture = (name: string): Buffer => fs.readFileSync(path.join(FIXTURES, name));

interface ExpectedTensor {
  dtype: string;
  shape: number[];
  values: number[];
  requires_grad: boolean;
  is_parameter: boolean;
}
interface Expected {
  torch_version: string;
  files: Record<string, { tensors?: Record<string, ExpectedTensor>; error?: string }>;
  zips: Record<string, Record<string, string | number>>;
  pickles: Record<string, string>;
}
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8')) as Expected;

/** Runs fn and returns the NlaError it throws (fails the test if it throws anything else or nothing). */
function nlaErrorOf(fn: () => unknown): NlaError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  if (thrown === undefined) throw new Error('expected an NlaError, but nothing was thrown');
  if (!(thrown instanceof NlaError)) throw new Error(`expected an NlaError, got ${String(thrown)}`);
  return thrown;
}

/** Only NlaError may escape; returns whether it threw. */
function throwsOnlyNlaError(fn: () => unknown): boolean {
  try {
    fn();
    return false;
  } catch (err) {
    if (!(err instanceof NlaError)) throw new Error(`a non-NlaError escaped: ${String(err)}`);
    return true;
  }
}

const stateDictOptions = { globals: STATE_DICT_GLOBALS, persistentLoad: () => null, label: 'test' };

// ---------------------------------------------------------------------------------------------------------
describe('zip reader', () => {
  it('lists the entries of a torch archive with their sizes', () => {
    const zip = ZipArchive.open(fixture('linear_8x8_params.pt'));
    expect(zip.entries.map((e) => [e.name, e.uncompressedSize])).toEqual([
      ['linear_8x8_params/data.pkl', zip.get('linear_8x8_params/data.pkl')!.uncompressedSize],
      ['linear_8x8_params/data/0', 256],
      ['linear_8x8_params/data/1', 32],
      ['linear_8x8_params/version', 2],
    ]);
    expect(zip.read('linear_8x8_params/version').toString()).toBe('3\n');
    // torch aligns every record's data to 64 bytes
    for (const e of zip.entries) expect(e.dataOffset % 64).toBe(0);
  });

  it('reads deflated and stored entries behind an archive comment (Python zipfile)', () => {
    const zip = ZipArchive.open(fixture('deflated.zip'));
    const want = expected.zips['deflated.zip']!;
    expect(zip.get('a/hello.txt')!.method).toBe(8);
    expect(zip.read('a/hello.txt').toString()).toBe(want['a/hello.txt']);
    expect(zip.get('a/stored.txt')!.method).toBe(0);
    expect(zip.read('a/stored.txt').toString()).toBe(want['a/stored.txt']);
    const payload = zip.read('a/payload.bin');
    expect(payload.length).toBe(want['payload_len']);
    expect(payload.every((b, i) => b === i % 256)).toBe(true);
  });

  it('reads entries whose local headers carry ZIP64 extra fields (Python zipfile, force_zip64)', () => {
    const zip = ZipArchive.open(fixture('zip64.zip'));
    expect(zip.read('big/second.bin').toString()).toBe('second');
    expect(zip.read('big/entry.bin').length).toBe(expected.zips['zip64.zip']!['payload_len']);
  });

  it('reads ZIP64 sizes and offsets from the central directory extra field', () => {
    const name = Buffer.from('z/data');
    const data = Buffer.from('zip64 payload');
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(name.length, 26);
    const crc = crc32(data);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(0xffffffff, 20); // compressed size → extra
    central.writeUInt32LE(0xffffffff, 24); // uncompressed size → extra
    central.writeUInt16LE(name.length, 28);
    central.writeUInt16LE(4 + 24, 30);
    central.writeUInt32LE(0xffffffff, 42); // local header offset → extra
    const extra = Buffer.alloc(28);
    extra.writeUInt16LE(0x0001, 0);
    extra.writeUInt16LE(24, 2);
    extra.writeBigUInt64LE(BigInt(data.length), 4); // uncompressed first
    extra.writeBigUInt64LE(BigInt(data.length), 12); // then compressed
    extra.writeBigUInt64LE(0n, 20); // then the offset
    const body = Buffer.concat([local, name, data]);
    const cd = Buffer.concat([central, name, extra]);
    const end = Buffer.alloc(56 + 20 + 22);
    end.writeUInt32LE(0x06064b50, 0);
    end.writeBigUInt64LE(44n, 4);
    end.writeBigUInt64LE(1n, 24);
    end.writeBigUInt64LE(1n, 32);
    end.writeBigUInt64LE(BigInt(cd.length), 40);
    end.writeBigUInt64LE(BigInt(body.length), 48);
    end.writeUInt32LE(0x07064b50, 56);
    end.writeBigUInt64LE(BigInt(body.length + cd.length), 64);
    end.writeUInt32LE(1, 72);
    end.writeUInt32LE(0x06054b50, 76);
    end.writeUInt16LE(0xffff, 84);
    end.writeUInt16LE(0xffff, 86);
    end.writeUInt32LE(0xffffffff, 88);
    end.writeUInt32LE(0xffffffff, 92);
    const archive = Buffer.concat([body, cd, end]);
    const zip = ZipArchive.open(archive);
    expect(zip.get('z/data')).toMatchObject({ compressedSize: data.length, uncompressedSize: data.length, localHeaderOffset: 0 });
    expect(zip.read('z/data').toString()).toBe('zip64 payload');
    // a truncated ZIP64 extra field is reported, not read past
    const short = Buffer.from(archive);
    short.writeUInt16LE(16, body.length + 46 + name.length + 2);
    expect(nlaErrorOf(() => ZipArchive.open(short)).message).toMatch(/ZIP64 extra field is too short for local header offset/);
  });

  it('uses the ZIP64 end record when the classic one is saturated', () => {
    const buf = Buffer.from(writeZip([{ name: 'x/a', data: Buffer.from('abc') }, { name: 'x/b', data: Buffer.from('defg') }]));
    const eocd = buf.length - 22;
    buf.writeUInt16LE(0xffff, eocd + 8);
    buf.writeUInt16LE(0xffff, eocd + 10);
    buf.writeUInt32LE(0xffffffff, eocd + 12);
    buf.writeUInt32LE(0xffffffff, eocd + 16);
    const zip = ZipArchive.open(buf);
    expect(zip.read('x/b').toString()).toBe('defg');
  });

  it('writeZip reproduces a torch-made archive byte for byte', () => {
    for (const name of ['linear_8x8_params.pt', 'linear_8x8_fp16.pt', 'views_offset.pt', 'malicious.pt']) {
      const original = fixture(name);
      const zip = ZipArchive.open(original);
      const rebuilt = writeZip(zip.entries.map((e) => ({ name: e.name, data: zip.read(e) })));
      expect(rebuilt.equals(original)).toBe(true);
    }
  });

  it('refuses a bad CRC, naming the entry', () => {
    const buf = Buffer.from(fixture('linear_8x8_params.pt'));
    const entry = ZipArchive.open(buf).get('linear_8x8_params/data/0')!;
    buf[entry.dataOffset + 5]! ^= 0x01;
    const err = nlaErrorOf(() => ZipArchive.open(buf).read('linear_8x8_params/data/0'));
    expect(err.code).toBe('ERR_NLA_HEAD_INVALID');
    expect(err.message).toMatch(/CRC-32 mismatch in entry 'linear_8x8_params\/data\/0'/);
  });

  it('refuses non-zip data and every truncation with an NlaError only', () => {
    expect(nlaErrorOf(() => ZipArchive.open(Buffer.from('hello world, definitely not a zip file'))).message).toMatch(
      /no end-of-central-directory record/,
    );
    const full = fixture('linear_8x8_params.pt');
    let refused = 0;
    for (let n = 0; n < full.length; n++) {
      if (throwsOnlyNlaError(() => readTorchStateDict(full.subarray(0, n), { fileName: 't.pt' }))) refused++;
    }
    expect(refused).toBe(full.length); // no prefix of the file is accepted
  });

  it('survives every single-byte corruption with a value or an NlaError', () => {
    const full = fixture('linear_8x8_params.pt');
    let refused = 0;
    for (let i = 0; i < full.length; i++) {
      const buf = Buffer.from(full);
      buf[i] = buf[i]! ^ 0xa5;
      if (throwsOnlyNlaError(() => readTorchStateDict(buf, { fileName: 'c.pt' }))) refused++;
    }
    // Flips inside padding, unused header fields (time, version) or the EOCD comment field do not matter;
    // everything else is caught (CRC, structure checks).
    expect(refused).toBeGreaterThan(full.length / 2);
  });

  it('refuses unsupported compression methods and out-of-range offsets', () => {
    const base = writeZip([{ name: 'x/a', data: Buffer.from('abc') }], { alignment: 1 });
    const cd = base.readUInt32LE(base.length - 22 + 16);
    const method = Buffer.from(base);
    method.writeUInt16LE(12, 8); // local
    method.writeUInt16LE(12, cd + 10); // central
    expect(nlaErrorOf(() => ZipArchive.open(method)).message).toMatch(/compression method 12/);
    const offset = Buffer.from(base);
    offset.writeUInt32LE(0x7fff0000, cd + 42);
    expect(nlaErrorOf(() => ZipArchive.open(offset)).message).toMatch(/runs past the end/);
    const cdOffset = Buffer.from(base);
    cdOffset.writeUInt32LE(0xfffffff0, cdOffset.length - 22 + 16);
    cdOffset.writeUInt32LE(0xfffffff0, cdOffset.length - 22 - 20 - 56 + 48); // the ZIP64 copy
    expect(nlaErrorOf(() => ZipArchive.open(cdOffset)).code).toBe('ERR_NLA_HEAD_INVALID');
  });

  it('inflates deflate entries and checks their size', () => {
    const data = Buffer.from('squeeze me '.repeat(50));
    const stored = writeZip([{ name: 'r/f', data }], { alignment: 1 });
    const deflated = deflateRawSync(data);
    // Re-pack as method 8 by hand: local header (30 + name + extra 4) then deflated data.
    const zip = ZipArchive.open(stored);
    const e = zip.get('r/f')!;
    const header = Buffer.from(stored.subarray(0, e.dataOffset));
    header.writeUInt16LE(8, 8);
    const afterData = e.dataOffset + data.length;
    const descriptor = Buffer.from(stored.subarray(afterData, afterData + 16));
    descriptor.writeUInt32LE(deflated.length, 8);
    const central = Buffer.from(stored.subarray(afterData + 16));
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(deflated.length, 20);
    const newCd = e.dataOffset + deflated.length + 16;
    const tail = central.length - 22 - 20 - 56;
    central.writeBigUInt64LE(BigInt(newCd), tail + 48);
    central.writeBigUInt64LE(BigInt(newCd + 46 + 3), tail + 56 + 8);
    central.writeUInt32LE(newCd, central.length - 22 + 16);
    const repacked = Buffer.concat([header, deflated, descriptor, central]);
    expect(ZipArchive.open(repacked).read('r/f').equals(data)).toBe(true);
    // a caller's size limit bounds what an entry may inflate to (deflate bombs)
    expect(nlaErrorOf(() => ZipArchive.open(repacked, { maxEntrySize: 100 })).message).toMatch(/entry 'r\/f' is too large \(550 bytes; the limit is 100\)/);
    const lying = Buffer.from(repacked);
    lying.writeUInt32LE(data.length - 1, newCd + 24); // uncompressed size too small
    expect(nlaErrorOf(() => ZipArchive.open(lying).read('r/f')).code).toBe('ERR_NLA_HEAD_INVALID');
  });

  it('computes CRC-32 like zip tools', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('restricted unpickler', () => {
  const plainExpected = (withBytes: boolean): unknown => {
    const shared = [1];
    const d: Record<string, unknown> = {
      ints: [0, 1, -2, 255, 256, 65535, 65536, -(2 ** 31), 2 ** 31, 2 ** 40, -(2n ** 70n), 2n ** 100n],
      f: [1.5, -0, 1e300],
      s: ['', '\u00e9', 'x'.repeat(300)],
      t: [[], [1], [1, 2], [1, 2, 3], [1, 2, 3, 4]],
      n: [null, true, false],
      d: { 1: 'one', k: {} },
      shared: [shared, shared],
    };
    if (withBytes) d['b'] = ['xy', 'z'.repeat(300)];
    return d;
  };
  /** Converts to plain JS for comparison: tuples → arrays, dicts → objects, bytes → latin1 strings. */
  const plain = (v: PickleValue): unknown => {
    if (v instanceof PyTuple) return v.items.map(plain);
    if (Array.isArray(v)) return v.map(plain);
    if (v instanceof PyDict) return Object.fromEntries([...v.entries].map(([k, x]) => [String(k), plain(x)]));
    if (v instanceof PyBytes) return Buffer.from(v.bytes).toString('latin1');
    return v;
  };

  it.each(['2', '3', '4', '5'])('decodes Python plain-data pickles of protocol %s', (proto) => {
    const result = unpickle(Buffer.from(expected.pickles[proto]!, 'hex'), { globals: new Map() });
    expect(plain(result)).toEqual(plainExpected(proto !== '2'));
    // memo aliasing is kept: both list items are the same object
    const shared = (result as PyDict).entries.get('shared') as PickleValue[];
    expect(shared[0]).toBe(shared[1]);
  });

  const pickleOf = (...parts: (string | number[])[]): Buffer =>
    Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));
  const MARKER = path.join(os.tmpdir(), `nla-ar-pwned-${process.pid}.txt`);
  const shortStr = (s: string): number[] => [0x8c, s.length, ...Buffer.from(s, 'latin1')];

  const malicious: [string, Buffer, string][] = [
    ['GLOBAL os system', pickleOf([0x80, 2], `cos\nsystem\n`, shortStr(`touch ${MARKER}`), [0x85, 0x52, 0x2e]), 'os.system'],
    ['GLOBAL posix system', pickleOf([0x80, 2], `cposix\nsystem\n`, shortStr(`touch ${MARKER}`), [0x85, 0x52, 0x2e]), 'posix.system'],
    ['GLOBAL builtins eval', pickleOf([0x80, 2], `cbuiltins\neval\n`, shortStr('1+1'), [0x85, 0x52, 0x2e]), 'builtins.eval'],
    ['GLOBAL __builtin__ getattr', pickleOf([0x80, 2], `c__builtin__\ngetattr\n`, [0x2e]), '__builtin__.getattr'],
    ['GLOBAL subprocess Popen', pickleOf([0x80, 2], `csubprocess\nPopen\n`, [0x2e]), 'subprocess.Popen'],
    ['STACK_GLOBAL builtins exec', pickleOf([0x80, 4], shortStr('builtins'), shortStr('exec'), [0x93, 0x2e]), 'builtins.exec'],
    [
      'os.system nested in the arguments of an allowlisted OrderedDict REDUCE',
      pickleOf([0x80, 2], `ccollections\nOrderedDict\n`, [0x5d, 0x28], shortStr('k'), `cos\nsystem\n`, shortStr(`touch ${MARKER}`), [0x85, 0x52, 0x86, 0x61, 0x85, 0x52, 0x2e]),
      'os.system',
    ],
    [
      'a disallowed global followed by garbage (refused before the garbage is read)',
      pickleOf([0x80, 2], `cnt\nsystem\n`, [0xff, 0xfe, 0xfd]),
      'nt.system',
    ],
    ['torch global outside the allowlist', pickleOf([0x80, 2], `ctorch\nload\n`, [0x2e]), 'torch.load'],
  ];

  it.each(malicious)('refuses %s with ERR_NLA_UNSAFE_PICKLE and runs nothing', (_label, bytes, global) => {
    const err = nlaErrorOf(() => unpickle(bytes, stateDictOptions));
    expect(err.code).toBe('ERR_NLA_UNSAFE_PICKLE');
    expect(err.message).toContain(`'${global}'`);
    expect(fs.existsSync(MARKER)).toBe(false);
  });

  it.each([
    ['INST', pickleOf([0x80, 2, 0x28], 'ios\nsystem\n', [0x2e])],
    ['OBJ', pickleOf([0x80, 2, 0x28, 0x29, 0x6f, 0x2e])],
    ['NEWOBJ', pickleOf([0x80, 2, 0x29, 0x29, 0x81, 0x2e])],
    ['EXT1', pickleOf([0x80, 2, 0x82, 0x01, 0x2e])],
    ['PERSID', pickleOf([0x80, 2], 'P0\n', [0x2e])],
  ])('refuses the object-creating opcode %s as unsafe', (name, bytes) => {
    const err = nlaErrorOf(() => unpickle(bytes, stateDictOptions));
    expect(err.code).toBe('ERR_NLA_UNSAFE_PICKLE');
    expect(err.message).toContain(name);
  });

  it('refuses REDUCE on something that is not an allowlisted callable', () => {
    const err = nlaErrorOf(() => unpickle(pickleOf([0x80, 2], shortStr('os.system'), [0x29, 0x52, 0x2e]), stateDictOptions));
    expect(err.code).toBe('ERR_NLA_UNSAFE_PICKLE');
    expect(err.message).toMatch(/REDUCE applied to string/);
  });

  it.each([
    ['an unknown opcode, with its offset', pickleOf([0x80, 2, 0xff]), /unknown pickle opcode 0xff \(opcode at offset 2\)/],
    ['a missing STOP', pickleOf([0x80, 2, 0x4e]), /ends without STOP/],
    ['a memo index never stored', pickleOf([0x80, 2, 0x68, 0x07, 0x2e]), /memo index 7 was never stored/],
    ['stack underflow', pickleOf([0x80, 2, 0x86, 0x2e]), /stack underflow/],
    ['a string longer than the data', pickleOf([0x80, 2, 0x58, 0xff, 0xff, 0xff, 0x7f, 0x41]), /truncated/],
    ['a text opcode of protocol 0', pickleOf('I12\n.'), /opcode INT \(0x49\) is not supported/],
    ['items left on the stack at STOP', pickleOf([0x80, 2, 0x4e, 0x4e, 0x2e]), /items left on the stack/],
    ['SETITEM on a list', pickleOf([0x80, 2, 0x5d, 0x4e, 0x4e, 0x73, 0x2e]), /not a dict/],
  ])('reports %s as ERR_NLA_HEAD_INVALID', (_label, bytes, message) => {
    const err = nlaErrorOf(() => unpickle(bytes, stateDictOptions));
    expect(err.code).toBe('ERR_NLA_HEAD_INVALID');
    expect(err.message).toMatch(message);
  });

  it('bounds the stack and the MARK depth', () => {
    const deep = Buffer.concat([Buffer.from([0x80, 2]), Buffer.alloc(2000, 0x28), Buffer.from([0x2e])]);
    expect(nlaErrorOf(() => unpickle(deep, stateDictOptions)).message).toMatch(/MARKs nested deeper than 1000/);
    const wide = Buffer.concat([Buffer.from([0x80, 2]), Buffer.alloc(200, 0x4e), Buffer.from([0x2e])]);
    expect(nlaErrorOf(() => unpickle(wide, { ...stateDictOptions, maxStack: 100 })).message).toMatch(/stack grows beyond 100/);
  });

  it('survives every single-byte corruption of a torch pickle with a value or an NlaError', () => {
    const zip = ZipArchive.open(fixture('linear_8x8_params.pt'));
    const pkl = zip.read('linear_8x8_params/data.pkl');
    const fakeStorage = (): PickleValue => null;
    let refused = 0;
    for (let i = 0; i < pkl.length; i++) {
      for (const x of [0x01, 0x80, 0xff]) {
        const bad = Buffer.from(pkl);
        bad[i] = bad[i]! ^ x;
        if (throwsOnlyNlaError(() => unpickle(bad, { globals: STATE_DICT_GLOBALS, persistentLoad: fakeStorage }))) refused++;
      }
    }
    expect(refused).toBeGreaterThan(0);
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('torch state_dict reader', () => {
  const tensorFixtures = Object.entries(expected.files).filter(([, v]) => v.tensors !== undefined);

  it.each(tensorFixtures)('reads %s exactly as torch does', (name, want) => {
    const got = readTorchStateDict(fixture(name), { fileName: name });
    expect([...got.keys()]).toEqual(Object.keys(want.tensors!));
    for (const [key, t] of Object.entries(want.tensors!)) {
      const g = got.get(key)!;
      expect({ key, dtype: g.dtype, shape: g.shape }).toEqual({ key, dtype: t.dtype, shape: t.shape });
      expect({ key, requiresGrad: g.requiresGrad, isParameter: g.isParameter }).toEqual({
        key,
        requiresGrad: t.requires_grad,
        isParameter: t.is_parameter,
      });
      expect(Array.from(g.data)).toEqual(t.values.map((v) => Math.fround(v)));
    }
  });

  it('reads contiguous views at a storage offset that share one storage', () => {
    const got = readTorchStateDict(fixture('views_offset.pt'));
    const full = got.get('full')!.data;
    expect(Array.from(got.get('rows')!.data)).toEqual(Array.from(full.subarray(16, 40)));
    expect(Array.from(got.get('row7')!.data)).toEqual(Array.from(full.subarray(56, 64)));
  });

  it('refuses a non-contiguous (transposed) tensor with a clear message', () => {
    const err = nlaErrorOf(() => readTorchStateDict(fixture('transposed.pt'), { fileName: 'transposed.pt' }));
    expect(err.code).toBe(expected.files['transposed.pt']!.error);
    expect(err.message).toMatch(/tensor 'weight' is not contiguous \(shape \[8, 8\], stride \[1, 8\]\)/);
  });

  it('refuses the torch-made malicious archive (posix.system) and runs nothing', () => {
    const marker = path.join(process.cwd(), 'nla_ar_pwned_marker.txt');
    const existedBefore = fs.existsSync(marker);
    const err = nlaErrorOf(() => readTorchStateDict(fixture('malicious.pt'), { fileName: 'malicious.pt' }));
    expect(err.code).toBe(expected.files['malicious.pt']!.error);
    expect(err.message).toMatch(/malicious\.pt: malicious\/data\.pkl: the pickle references the global 'posix\.system'/);
    expect(fs.existsSync(marker)).toBe(existedBefore);
    expect(existedBefore).toBe(false);
  });

  it('refuses a storage whose size disagrees with the pickle', () => {
    const good = writeTorchStateDict({ w: { shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) } }, { archiveName: 'a' });
    const zip = ZipArchive.open(good);
    const shorter = writeZip(zip.entries.map((e) => ({ name: e.name, data: e.name === 'a/data/0' ? zip.read(e).subarray(0, 12) : zip.read(e) })));
    expect(nlaErrorOf(() => readTorchStateDict(shorter, { fileName: 's.pt' })).message).toMatch(
      /storage 'a\/data\/0' has 12 bytes, expected 16 \(4 x float32\)/,
    );
  });

  it('refuses big-endian files, legacy files, and zips that are not torch archives', () => {
    const good = writeTorchStateDict({ w: { shape: [1], data: new Float32Array([1]) } }, { archiveName: 'a' });
    const zip = ZipArchive.open(good);
    const big = writeZip(zip.entries.map((e) => ({ name: e.name, data: e.name === 'a/byteorder' ? Buffer.from('big') : zip.read(e) })));
    expect(nlaErrorOf(() => readTorchStateDict(big)).message).toMatch(/byteorder is 'big'/);
    expect(nlaErrorOf(() => readTorchStateDict(Buffer.from([0x80, 0x02, 0x8a, 0x0a]))).message).toMatch(/legacy \(pre-1\.6\)/);
    expect(nlaErrorOf(() => readTorchStateDict(fixture('deflated.zip'))).message).toMatch(/'a\/data\.pkl' is missing/);
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('torch state_dict writer', () => {
  const fromFixture = (name: string): Record<string, { shape: number[]; data: Float32Array }> =>
    Object.fromEntries([...readTorchStateDict(fixture(name))].map(([k, t]) => [k, { shape: t.shape, data: t.data }]));
  const pickleOf = (buf: Buffer): Buffer => {
    const zip = ZipArchive.open(buf);
    return zip.read(zip.entries.find((e) => e.name.endsWith('/data.pkl'))!);
  };

  it.each([
    ['linear_8x8_params.pt', true, 'cpu'],
    ['linear_8x8_plain.pt', false, 'cpu'],
    ['linear_8x8_params_cuda.pt', true, 'cuda:0'],
  ])('writes the same pickle bytes as torch for %s', (name, asParameters, location) => {
    const written = writeTorchStateDict(fromFixture(name), { archiveName: name.replace('.pt', ''), asParameters, location });
    expect(pickleOf(written).toString('hex')).toBe(pickleOf(fixture(name)).toString('hex'));
  });

  it("writes torch's storage records byte for byte", () => {
    const original = ZipArchive.open(fixture('linear_8x8_params.pt'));
    const written = ZipArchive.open(writeTorchStateDict(fromFixture('linear_8x8_params.pt'), { archiveName: 'linear_8x8_params' }));
    for (const name of ['linear_8x8_params/data/0', 'linear_8x8_params/data/1', 'linear_8x8_params/version']) {
      expect(written.read(name).equals(original.read(name))).toBe(true);
    }
  });

  it('lays out the torch 2.x record set, 64-byte aligned', () => {
    const zip = ZipArchive.open(writeTorchStateDict({ weight: { shape: [2, 3], data: new Float32Array(6) }, bias: { shape: [2], data: new Float32Array(2) } }));
    expect(zip.entries.map((e) => e.name)).toEqual([
      'linear_head/data.pkl',
      'linear_head/.format_version',
      'linear_head/.storage_alignment',
      'linear_head/byteorder',
      'linear_head/data/0',
      'linear_head/data/1',
      'linear_head/version',
      'linear_head/.data/serialization_id',
    ]);
    for (const e of zip.entries) expect({ name: e.name, mod: e.dataOffset % 64 }).toEqual({ name: e.name, mod: 0 });
    expect(zip.read('linear_head/.storage_alignment').toString()).toBe('64');
    expect(zip.read('linear_head/byteorder').toString()).toBe('little');
    expect(zip.read('linear_head/.data/serialization_id').toString()).toMatch(/^[0-9]{40}$/);
  });

  it('round-trips values, shapes and the Parameter flag (also 0-d, >3-d and cuda locations)', () => {
    const tensors = {
      'layer.weight': { shape: [2, 3], data: new Float32Array([1, -2, 3.5, 1e-30, -0, 7]) },
      scalar: { shape: [], data: new Float32Array([42]) },
      fourD: { shape: [1, 2, 1, 2], data: new Float32Array([1, 2, 3, 4]) },
    };
    for (const location of ['cpu', 'cuda:0']) {
      for (const asParameters of [true, false]) {
        const got = readTorchStateDict(writeTorchStateDict(tensors, { asParameters, location }));
        expect([...got.keys()]).toEqual(Object.keys(tensors));
        for (const [k, t] of Object.entries(tensors)) {
          expect(got.get(k)!.shape).toEqual(t.shape);
          expect(Object.is(got.get(k)!.data[4] ?? 0, (t.data[4] as number | undefined) ?? 0)).toBe(true);
          expect(Array.from(got.get(k)!.data)).toEqual(Array.from(t.data));
          expect(got.get(k)!.isParameter).toBe(asParameters);
          expect(got.get(k)!.requiresGrad).toBe(asParameters);
        }
      }
    }
  });

  it('writes a 1536x1536 head at exactly the size of the published linear_head.pt (9,445,317 bytes)', () => {
    const head = { weight: { shape: [1536, 1536], data: new Float32Array(1536 * 1536) }, bias: { shape: [1536], data: new Float32Array(1536) } };
    expect(writeTorchStateDict(head, { archiveName: 'linear_head', asParameters: true, location: 'cpu' }).length).toBe(9_445_317);
    // the plain state_dict() is 64 bytes shorter, as the protocol notes say
    expect(writeTorchStateDict(head, { archiveName: 'linear_head', asParameters: false }).length).toBe(9_445_317 - 64);
    // torch writes 'cuda:0' once per storage (no memo hit: see linear_8x8_params_cuda.pt), which pushes the
    // pickle past a 64-byte boundary: a CUDA-saved head would be 9,445,381 bytes, so the published file
    // was saved from CPU tensors.
    expect(writeTorchStateDict(head, { archiveName: 'linear_head', asParameters: true, location: 'cuda:0' }).length).toBe(9_445_381);
  });

  it('refuses data that does not match the shape', () => {
    const err = nlaErrorOf(() => writeTorchStateDict({ w: { shape: [2, 2], data: new Float32Array(3) } }));
    expect(err.code).toBe('ERR_NLA_INVALID_ARG');
    expect(err.message).toMatch(/needs 4 values, data has 3/);
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('half-precision conversions', () => {
  it.each([
    [1, 0x3c00],
    [-2, 0xc000],
    [1 + 2 ** -11, 0x3c00], // halfway: ties to even (down)
    [1 + 3 * 2 ** -11, 0x3c02], // halfway: ties to even (up)
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above halfway
    [65504, 0x7bff],
    [65519, 0x7bff],
    [65520, 0x7c00], // halfway to 65536: rounds to even = overflow to Inf
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // halfway to 0: ties to even
    [3 * 2 ** -25, 0x0002], // 1.5 ulp: ties to even
    [2 ** -14 - 2 ** -25, 0x0400], // rounds up into the smallest normal
    [-0, 0x8000],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [NaN, 0x7e00],
  ])('f32ToF16Bits(%p) = %p', (x, bits) => {
    expect(f32ToF16Bits(x)).toBe(bits);
  });

  it.each([
    [1, 0x3f80],
    [1 + 2 ** -8, 0x3f80], // ties to even
    [1 + 3 * 2 ** -8, 0x3f82],
    [-3.0, 0xc040],
    [3.4028234663852886e38, 0x7f80], // FLT_MAX rounds up to Inf
    [NaN, 0x7fc0],
    [-0, 0x8000],
  ])('f32ToBf16Bits(%p) = %p', (x, bits) => {
    expect(f32ToBf16Bits(x)).toBe(bits);
  });

  it('decodes every half value and re-encodes it to the same bits', () => {
    for (let h = 0; h < 0x10000; h++) {
      const f = f16BitsToF32(h);
      if (Number.isNaN(f)) continue;
      if (f32ToF16Bits(f) !== h) throw new Error(`half 0x${h.toString(16)} -> ${f} -> 0x${f32ToF16Bits(f).toString(16)}`);
    }
    for (let b = 0; b < 0x10000; b++) {
      const f = bf16BitsToF32(b);
      if (Number.isNaN(f)) continue;
      if (f32ToBf16Bits(f) !== b) throw new Error(`bf16 0x${b.toString(16)} round trip failed`);
    }
    expect(f16BitsToF32(0x7bff)).toBe(65504);
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('safetensors writer', () => {
  const parse = (buf: Buffer): { header: Record<string, unknown>; keys: string[]; raw: string; dataStart: number } => {
    const n = Number(buf.readBigUInt64LE(0));
    const raw = buf.subarray(8, 8 + n).toString('utf8');
    const header = JSON.parse(raw) as Record<string, unknown>;
    return { header, keys: Object.keys(header), raw, dataStart: 8 + n };
  };

  it('writes a sorted, space-padded header and the tensors in header order', () => {
    const buf = writeSafetensors(
      {
        b: { dtype: 'F16', shape: [2], data: new Float32Array([1, -2]) },
        a: { dtype: 'F16', shape: [1], data: new Float32Array([0.5]) },
        z: { dtype: 'F32', shape: [1, 2], data: new Float32Array([3, 4]) },
        '10': { dtype: 'BF16', shape: [1], data: new Float32Array([1]) },
      },
      { format: 'pt', alpha: 'x' },
    );
    const { header, raw, dataStart } = parse(buf);
    expect(raw.trimEnd()).toBe(
      '{"__metadata__":{"alpha":"x","format":"pt"},' +
        '"z":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},' +
        '"10":{"dtype":"BF16","shape":[1],"data_offsets":[8,10]},' +
        '"a":{"dtype":"F16","shape":[1],"data_offsets":[10,12]},' +
        '"b":{"dtype":"F16","shape":[2],"data_offsets":[12,16]}}',
    );
    expect(raw.length % 8).toBe(0);
    expect(/^ *$/.test(raw.slice(raw.trimEnd().length))).toBe(true);
    expect(buf.length).toBe(dataStart + 16);
    expect(buf.readFloatLE(dataStart)).toBe(3);
    expect(buf.readUInt16LE(dataStart + 8)).toBe(0x3f80);
    expect(buf.readUInt16LE(dataStart + 10)).toBe(0x3800);
    expect(buf.readUInt16LE(dataStart + 14)).toBe(0xc000);
    expect(header['__metadata__']).toEqual({ alpha: 'x', format: 'pt' });
  });

  it('reproduces the published AR adapter size (85,750,952 bytes) from its tensor list', () => {
    // design/nla-protocol.md §5: 200 F32 LoRA tensors, layers 0-14 with q/k/v/o, 15-34 with q/o.
    const d = 1536;
    const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    const shared = new Map<number, Float32Array>();
    const zeros = (n: number): Float32Array => {
      if (!shared.has(n)) shared.set(n, new Float32Array(n));
      return shared.get(n)!;
    };
    const add = (layer: number, proj: string, inDim: number, outDim: number): void => {
      const base = `base_model.model.model.language_model.layers.${layer}.self_attn.${proj}`;
      tensors[`${base}.lora_A.weight`] = { dtype: 'F32', shape: [64, inDim], data: zeros(64 * inDim) };
      tensors[`${base}.lora_B.weight`] = { dtype: 'F32', shape: [outDim, 64], data: zeros(outDim * 64) };
    };
    for (let layer = 0; layer < 35; layer++) {
      const full = layer % 5 === 4;
      const q = full ? 4096 : 2048;
      const kv = full ? 512 : 256;
      add(layer, 'q_proj', d, q);
      add(layer, 'o_proj', q, d);
      if (layer < 15) {
        add(layer, 'k_proj', d, kv);
        add(layer, 'v_proj', d, kv);
      }
    }
    expect(Object.keys(tensors).length).toBe(200);
    expect(writeSafetensors(tensors, { format: 'pt' }).length).toBe(85_750_952);
  });

  it('refuses bad inputs with ERR_NLA_INVALID_ARG', () => {
    const bad = (t: Record<string, unknown>): NlaError =>
      nlaErrorOf(() => writeSafetensors(t as unknown as Parameters<typeof writeSafetensors>[0]));
    expect(bad({ w: { dtype: 'F32', shape: [3], data: new Float32Array(2) } }).message).toMatch(/needs 3 values, data has 2/);
    expect(bad({ w: { dtype: 'I8', shape: [1], data: new Float32Array(1) } }).message).toMatch(/dtype must be F32, F16 or BF16/);
    expect(bad({ __metadata__: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }).code).toBe('ERR_NLA_INVALID_ARG');
    expect(bad({ w: { dtype: 'F32', shape: [1], data: [1] } }).message).toMatch(/Float32Array/);
  });
});
