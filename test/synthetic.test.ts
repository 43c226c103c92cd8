/**
 * The synthetic model generator: GGUF writer, ggml block encoders, the Gemma 4 plan and file, the vocabulary,
 * PEFT / llama.cpp LoRA adapters and the demo cache. The product's GGUF reader is C++; this file parses what it
 * needs with a small inline reader.
 */
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  buildSyntheticVocab,
  dequantize,
  e2bShapesConfig,
  fp16BitsToFp32,
  fp32ToBf16Bits,
  fp32ToFp16Bits,
  GgmlType,
  planSyntheticGemma4,
  quantize,
  rowSize,
  syntheticTensorValues,
  tinyGemma4Config,
  TokenType,
  writeGguf,
  writeLlamaCppLoraGguf,
  writePeftAdapter,
  writeSyntheticGemma4,
  type GgufKv,
  type SyntheticGemma4Config,
} from '../tools/synthetic';
import { writeDemoFiles } from '../tools/demo';

// ---------------------------------------------------------------- a minimal GGUF reader for the checks

interface ParsedGguf {
  version: number;
  kv: Map<string, { type: number; value: unknown }>;
  tensors: { name: string; ne: number[]; type: number; offset: number }[];
  dataOffset: number;
  buf: Buffer;
}

function parseGguf(file: string): ParsedGguf {
  const buf = fs.readFileSync(file);
  let p = 0;
  const u32 = (): number => {
    const v = buf.readUInt32LE(p);
    p += 4;
    return v;
  };
  const u64 = (): number => {
    const v = Number(buf.readBigUInt64LE(p));
    p += 8;
    return v;
  };
  const str = (): string => {
    const n = u64();
    const s = buf.toString('utf8', p, p + n);
    p += n;
    return s;
  };
  const scalar = (t: number): unknown => {
    const r = <T>(v: T, n: number): T => {
      p += n;
      return v;
    };
    switch (t) {
      case 0: return r(buf.readUInt8(p), 1);
      case 1: return r(buf.readInt8(p), 1);
      case 2: return r(buf.readUInt16LE(p), 2);
      case 3: return r(buf.readInt16LE(p), 2);
      case 4: return r(buf.readUInt32LE(p), 4);
      case 5: return r(buf.readInt32LE(p), 4);
      case 6: return r(buf.readFloatLE(p), 4);
      case 7: return r(buf.readUInt8(p) !== 0, 1);
      case 8: return str();
      case 10: return r(buf.readBigUInt64LE(p), 8);
      case 11: return r(buf.readBigInt64LE(p), 8);
      case 12: return r(buf.readDoubleLE(p), 8);
      default: throw new Error(`bad gguf type ${t}`);
    }
  };
  if (buf.toString('latin1', 0, 4) !== 'GGUF') throw new Error('bad magic');
  p = 4;
  const version = u32();
  const nTensors = u64();
  const nKv = u64();
  const kv = new Map<string, { type: number; value: unknown }>();
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const t = u32();
    if (t === 9) {
      const it = u32();
      const n = u64();
      const arr: unknown[] = [];
      for (let j = 0; j < n; j++) arr.push(scalar(it));
      kv.set(key, { type: 100 + it, value: arr });
    } else {
      kv.set(key, { type: t, value: scalar(t) });
    }
  }
  const tensors: ParsedGguf['tensors'] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nd = u32();
    const ne: number[] = [];
    for (let j = 0; j < nd; j++) ne.push(u64());
    tensors.push({ name, ne, type: u32(), offset: u64() });
  }
  const align = (kv.get('general.alignment')?.value as number | undefined) ?? 32;
  const dataOffset = Math.ceil(p / align) * align;
  return { version, kv, tensors, dataOffset, buf };
}

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'nla-synth-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

/** A faster tiny config for tests that write files: smaller vocabulary (the embeddings dominate the size). */
function smallConfig(over: Partial<SyntheticGemma4Config> = {}): SyntheticGemma4Config {
  return tinyGemma4Config({ vocab: buildSyntheticVocab(0, 1024), ...over });
}

const sha = (f: string): string => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

// ---------------------------------------------------------------- GGUF writer

describe('GGUF writer', () => {
  test('round-trips metadata of every type, tensor infos, alignment and data', () => {
    const kvs: GgufKv[] = [
      { key: 'a.u8', value: { type: 'u8', value: 250 } },
      { key: 'a.i8', value: { type: 'i8', value: -5 } },
      { key: 'a.u16', value: { type: 'u16', value: 65000 } },
      { key: 'a.i16', value: { type: 'i16', value: -32000 } },
      { key: 'a.u32', value: { type: 'u32', value: 4000000000 } },
      { key: 'a.i32', value: { type: 'i32', value: -2000000000 } },
      { key: 'a.u64', value: { type: 'u64', value: 2n ** 63n + 5n } },
      { key: 'a.i64', value: { type: 'i64', value: -(2n ** 62n) } },
      { key: 'a.f32', value: { type: 'f32', value: 1.5 } },
      { key: 'a.f64', value: { type: 'f64', value: Math.PI } },
      { key: 'a.bool', value: { type: 'bool', value: true } },
      { key: 'a.str', value: { type: 'string', value: 'héllo ▁ wörld' } },
      { key: 'a.arr_str', value: { type: 'array', itemType: 'string', value: ['x', '', '<0x0A>', '㊗'] } },
      { key: 'a.arr_i32', value: { type: 'array', itemType: 'i32', value: [1, -2, 3] } },
      { key: 'a.arr_bool', value: { type: 'array', itemType: 'bool', value: [true, false] } },
      { key: 'a.arr_f32', value: { type: 'array', itemType: 'f32', value: [0.25, -1000] } },
    ];
    const f = path.join(tmpRoot, 'kv.gguf');
    const t1 = new Uint8Array(12).map((_, i) => i + 1); // 3 f32 -> 12 bytes, padded to 32
    const t2 = new Uint8Array(34).fill(7); // one q8_0 block
    const { fileSize, tensors } = writeGguf(f, kvs, [
      { name: 'one', ne: [3], type: GgmlType.F32, data: t1 },
      { name: 'two', ne: [32, 1], type: GgmlType.Q8_0, data: t2 },
    ]);
    const g = parseGguf(f);
    expect(g.version).toBe(3);
    expect(fs.statSync(f).size).toBe(fileSize);
    expect(g.kv.has('general.alignment')).toBe(false); // default 32 is implicit
    const val = (k: string): unknown => g.kv.get(k)!.value;
    expect([val('a.u8'), val('a.i8'), val('a.u16'), val('a.i16'), val('a.u32'), val('a.i32')]).toEqual([250, -5, 65000, -32000, 4000000000, -2000000000]);
    expect(val('a.u64')).toBe(2n ** 63n + 5n);
    expect(val('a.i64')).toBe(-(2n ** 62n));
    expect(val('a.f32')).toBe(1.5);
    expect(val('a.f64')).toBe(Math.PI);
    expect(val('a.bool')).toBe(true);
    expect(val('a.str')).toBe('héllo ▁ wörld');
    expect(val('a.arr_str')).toEqual(['x', '', '<0x0A>', '㊗']);
    expect(val('a.arr_i32')).toEqual([1, -2, 3]);
    expect(g.kv.get('a.arr_i32')!.type).toBe(100 + 5);
    expect(val('a.arr_bool')).toEqual([true, false]);
    expect(val('a.arr_f32')).toEqual([0.25, -1000]);
    expect(g.tensors).toEqual([
      { name: 'one', ne: [3], type: 0, offset: 0 },
      { name: 'two', ne: [32, 1], type: 8, offset: 32 },
    ]);
    expect(tensors.map((t) => t.nbytes)).toEqual([12, 34]);
    expect(g.dataOffset % 32).toBe(0);
    expect([...g.buf.subarray(g.dataOffset, g.dataOffset + 12)]).toEqual([...t1]);
    expect([...g.buf.subarray(g.dataOffset + 12, g.dataOffset + 32)]).toEqual(new Array(20).fill(0));
    expect([...g.buf.subarray(g.dataOffset + 32, g.dataOffset + 66)]).toEqual([...t2]);
    expect(fileSize).toBe(g.dataOffset + 32 + 64);
  });

  test('custom alignment is written as general.alignment and honoured', () => {
    const f = path.join(tmpRoot, 'align.gguf');
    writeGguf(f, [], [
      { name: 'a', ne: [1], type: GgmlType.F32, data: new Uint8Array(4) },
      { name: 'b', ne: [1], type: GgmlType.F32, data: new Uint8Array([1, 2, 3, 4]) },
    ], { alignment: 64 });
    const g = parseGguf(f);
    expect(g.kv.get('general.alignment')).toEqual({ type: 4, value: 64 });
    expect(g.tensors[1]!.offset).toBe(64);
    expect(g.dataOffset % 64).toBe(0);
    expect([...g.buf.subarray(g.dataOffset + 64, g.dataOffset + 68)]).toEqual([1, 2, 3, 4]);
  });

  test('rejects wrong sizes, out-of-range values and duplicate names', () => {
    const f = path.join(tmpRoot, 'bad.gguf');
    expect(() => writeGguf(f, [], [{ name: 'a', ne: [2], type: GgmlType.F32, data: new Uint8Array(4) }])).toThrow(/incomplete/);
    expect(fs.existsSync(f)).toBe(false); // partial file removed
    expect(() => writeGguf(f, [{ key: 'k', value: { type: 'u8', value: 256 } }], [])).toThrow(/k/);
    expect(() => writeGguf(f, [], [
      { name: 'a', ne: [1], type: GgmlType.F32, data: new Uint8Array(4) },
      { name: 'a', ne: [1], type: GgmlType.F32, data: new Uint8Array(4) },
    ])).toThrow(/duplicate/);
  });
});

// ---------------------------------------------------------------- ggml block encoders

describe('ggml encoders', () => {
  // x_j = (j - 13) / 8 for j = 0..31: min -1.625, max 2.25. Expected bytes are ggml's quantize_row_*_ref output.
  // q5_1 can be checked by hand: d = (2.25 + 1.625) / 31 = 0.125 (fp16 0x3000), m = -1.625 (fp16 0xBE80),
  // (x_j - m)/d = j exactly, so quant j = j: qs[j] = (j & 15) | ((j + 16) & 15) << 4 = 0x00, 0x11, ..., 0xFF and
  // the 5th bits are 0 for j < 16 and 1 for j + 16, i.e. qh = 0xFFFF0000.
  // q8_0: d = 2.25/127 (fp16 0x2489), q_j = roundf(x_j · 127/2.25): j=0 -> -92 (0xA4), j=13 -> 0, j=31 -> 127.
  const x = Float32Array.from({ length: 32 }, (_, j) => (j - 13) / 8);
  const expected: [GgmlType, string][] = [
    [GgmlType.Q8_0, '8924a4abb2b9c0c8cfd6dde4ebf2f900070e151c232a313840474e555c636a71787f'],
    [GgmlType.Q4_0, '80b47e6d6d5c5c4c4b4b3a3a292918180807'],
    [GgmlType.Q4_1, '223480be80809191a2a2b3b3c4c4d5d5e6e6f7f7'],
    [GgmlType.Q5_0, '80b0ff3f0000dccbcab9a89786756454434231201f0e'],
    [GgmlType.Q5_1, '003080be0000ffff00112233445566778899aabbccddeeff'],
  ];
  test.each(expected)('type %i: fixed block matches ggml bytes', (type, hex) => {
    expect(Buffer.from(quantize(type, x)).toString('hex')).toBe(hex);
  });

  test('row sizes and block-size checks', () => {
    expect(rowSize(GgmlType.Q8_0, 256)).toBe(8 * 34);
    expect(rowSize(GgmlType.Q4_0, 64)).toBe(36);
    expect(rowSize(GgmlType.Q5_1, 32)).toBe(24);
    expect(rowSize(GgmlType.Q4_K, 256)).toBe(144);
    expect(rowSize(GgmlType.Q5_K, 256)).toBe(176);
    expect(rowSize(GgmlType.Q6_K, 256)).toBe(210);
    expect(rowSize(GgmlType.BF16, 3)).toBe(6);
    expect(() => rowSize(GgmlType.Q8_0, 48)).toThrow(/multiple/);
    expect(() => quantize(GgmlType.Q4_K, new Float32Array(256))).toThrow(/K-quants/);
  });

  test('fp16 / bf16 rounding edge cases', () => {
    expect(fp32ToFp16Bits(1)).toBe(0x3c00);
    expect(fp32ToFp16Bits(-2)).toBe(0xc000);
    expect(fp32ToFp16Bits(65504)).toBe(0x7bff);
    expect(fp32ToFp16Bits(65520)).toBe(0x7c00); // halfway to 65536 rounds to even -> inf
    expect(fp32ToFp16Bits(2 ** -24)).toBe(0x0001);
    expect(fp32ToFp16Bits(2 ** -25)).toBe(0x0000); // tie to even
    expect(fp32ToFp16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie to even (down)
    expect(fp32ToFp16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie to even (up)
    expect(fp32ToFp16Bits(NaN) & 0x7e00).toBe(0x7e00);
    expect(fp16BitsToFp32(0x3555)).toBeCloseTo(0.33325, 5);
    expect(fp32ToBf16Bits(1)).toBe(0x3f80);
    expect(fp32ToBf16Bits(Math.fround(1 + 2 ** -8))).toBe(0x3f80); // tie to even
    expect(fp32ToBf16Bits(Math.fround(1 + 3 * 2 ** -8))).toBe(0x3f82);
  });

  test('dequantize(quantize(x)) stays within half a step', () => {
    const v = Float32Array.from({ length: 256 }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7)));
    for (const [type, steps] of [[GgmlType.Q8_0, 127], [GgmlType.Q4_0, 8], [GgmlType.Q5_0, 16]] as const) {
      const y = dequantize(type, quantize(type, v), v.length);
      for (let b = 0; b < 8; b++) {
        let amax = 0;
        for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(v[b * 32 + j]!));
        for (let j = 0; j < 32; j++) expect(Math.abs(y[b * 32 + j]! - v[b * 32 + j]!)).toBeLessThanOrEqual((amax / steps) * 1.01);
      }
    }
  });

  // Byte-exact against ggml itself when the llama.cpp source from the reference harness (or /work/refcache) and a C
  // compiler are present: compiles ggml-quants.c with stubs for the 4 helpers it calls.
  const ggmlSrc = [path.join(__dirname, '..', '.cache', 'reference', 'llama.cpp', 'ggml'), '/work/refcache/llama.cpp/ggml'].find((d) =>
    fs.existsSync(path.join(d, 'src', 'ggml-quants.c')),
  );
  let cc: string | null = null;
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
    cc = 'gcc';
  } catch {
    cc = null;
  }
  (ggmlSrc && cc ? test : test.skip)('random blocks are byte-identical to ggml quantize_row_*_ref', () => {
    const dir = fs.mkdtempSync(path.join(tmpRoot, 'ggml-'));
    fs.writeFileSync(
      path.join(dir, 'drv.c'),
      `#include <stdio.h>
#include <stdlib.h>
#include "ggml.h"
#include "ggml-quants.h"
#include "ggml-impl.h"
void ggml_abort(const char*f,int l,const char*fmt,...){abort();}
size_t ggml_row_size(enum ggml_type t, int64_t n){abort();}
const char* ggml_type_name(enum ggml_type t){return "?";}
size_t ggml_type_size(enum ggml_type t){abort();}
int main(int argc,char**argv){int n=atoi(argv[1]);float*x=malloc(n*4);if(fread(x,4,n,stdin)!=(size_t)n)return 1;
void*b=malloc(n*4);
quantize_row_q8_0_ref(x,b,n);fwrite(b,1,n/32*34,stdout);quantize_row_q4_0_ref(x,b,n);fwrite(b,1,n/32*18,stdout);
quantize_row_q4_1_ref(x,b,n);fwrite(b,1,n/32*20,stdout);quantize_row_q5_0_ref(x,b,n);fwrite(b,1,n/32*22,stdout);
quantize_row_q5_1_ref(x,b,n);fwrite(b,1,n/32*24,stdout);
for(int i=0;i<n;i++){ggml_fp16_t h=ggml_compute_fp32_to_fp16(x[i]);fwrite(&h,2,1,stdout);}
for(int i=0;i<n;i++){ggml_bf16_t h=ggml_compute_fp32_to_bf16(x[i]);fwrite(&h,2,1,stdout);}
return 0;}
`,
    );
    const exe = path.join(dir, 'drv');
    execFileSync(cc!, ['-O1', '-w', `-I${ggmlSrc}/include`, `-I${ggmlSrc}/src`, path.join(dir, 'drv.c'), path.join(ggmlSrc!, 'src', 'ggml-quants.c'), '-o', exe, '-lm']);
    const n = 32 * 2000;
    const v = new Float32Array(n);
    const scales = [1, 1e-3, 1e3, 1e-6, 0.02, 5, 60000, 1e-8, 1, 70000];
    let s = 12345;
    const rnd = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296) * 2 - 1;
    for (let i = 0; i < n; i++) {
      const blk = Math.floor(i / 32);
      v[i] = rnd() * scales[blk % scales.length]!;
      if (blk % 97 === 5) v[i] = 0; // all-zero block
      if (blk % 89 === 3) v[i] = 0.5 * ((i % 32) - 16); // exact grid values: rounding ties
      if (blk % 83 === 2) v[i] = 1.25; // constant block
    }
    const out = execFileSync(exe, [String(n)], { input: Buffer.from(v.buffer), maxBuffer: 1 << 26 });
    let off = 0;
    for (const [type, bs] of [[GgmlType.Q8_0, 34], [GgmlType.Q4_0, 18], [GgmlType.Q4_1, 20], [GgmlType.Q5_0, 22], [GgmlType.Q5_1, 24], [GgmlType.F16, 64], [GgmlType.BF16, 64]] as const) {
      const len = (n / 32) * bs;
      const ref = out.subarray(off, off + len);
      off += len;
      const mine = Buffer.from(quantize(type, v));
      const firstDiff = mine.findIndex((b, i) => b !== ref[i]);
      expect({ type, firstDiff }).toEqual({ type, firstDiff: -1 });
    }
  }, 60000);
});

// ---------------------------------------------------------------- plan

describe('Gemma 4 plan', () => {
  test('E2B shapes: 601 tensors (full layout) and 541 (pruned), without writing', () => {
    const full = planSyntheticGemma4(e2bShapesConfig());
    const pruned = planSyntheticGemma4(e2bShapesConfig({ layout: 'pruned' }));
    expect(full.tensorCount).toBe(6 + 35 * 17);
    expect(full.tensorCount).toBe(601);
    expect(pruned.tensorCount).toBe(541);
    const byName = new Map(full.tensors.map((t) => [t.name, t]));
    const ne = (n: string): readonly number[] | undefined => byName.get(n)?.ne;
    expect(ne('per_layer_token_embd.weight')).toEqual([8960, 4096]);
    expect(ne('per_layer_model_proj.weight')).toEqual([1536, 8960]);
    expect(ne('per_layer_proj_norm.weight')).toEqual([256]);
    expect(ne('rope_freqs.weight')).toEqual([256]);
    expect(ne('blk.0.attn_q.weight')).toEqual([1536, 2048]);
    expect(ne('blk.4.attn_q.weight')).toEqual([1536, 4096]);
    expect(ne('blk.4.attn_k.weight')).toEqual([1536, 512]);
    expect(ne('blk.4.attn_output.weight')).toEqual([4096, 1536]);
    expect(ne('blk.4.attn_q_norm.weight')).toEqual([512]);
    expect(ne('blk.14.ffn_gate.weight')).toEqual([1536, 6144]);
    expect(ne('blk.15.ffn_down.weight')).toEqual([12288, 1536]);
    expect(ne('blk.17.inp_gate.weight')).toEqual([1536, 256]);
    expect(ne('blk.17.proj.weight')).toEqual([256, 1536]);
    expect(ne('blk.34.layer_output_scale.weight')).toEqual([1]);
    expect(byName.get('blk.17.attn_q.weight')!.typeName).toBe('f16');
    expect(byName.get('blk.17.attn_norm.weight')!.typeName).toBe('f32');
    const prunedNames = new Set(pruned.tensors.map((t) => t.name));
    expect(prunedNames.has('blk.14.attn_k.weight')).toBe(true);
    expect(prunedNames.has('blk.15.attn_k.weight')).toBe(false);
    expect(prunedNames.has('blk.15.attn_v.weight')).toBe(false);
    expect(prunedNames.has('blk.15.attn_k_norm.weight')).toBe(false);
    const kv = new Map(full.kvs.map((k) => [k.key, k.value]));
    expect(kv.get('gemma4.attention.sliding_window_pattern')).toMatchObject({ value: Array.from({ length: 35 }, (_, i) => i % 5 !== 4) });
    expect(kv.get('gemma4.feed_forward_length')).toMatchObject({ itemType: 'i32' });
    expect(kv.get('gemma4.attention.shared_kv_layers')).toEqual({ type: 'u32', value: 20 });
    expect(full.fileSize).toBeGreaterThan(3e9);
    expect(full.tensors.every((t) => t.offset % 32 === 0)).toBe(true);
  });

  test('tiny preset: KV sharing pair, every matrix row a multiple of 256 (K-quantizable)', () => {
    const c = tinyGemma4Config();
    const plan = planSyntheticGemma4(c);
    expect(plan.tensorCount).toBe(6 + 8 * 17);
    const nKv = c.nLayer - c.sharedKvLayers;
    expect([c.sliding[nKv - 2], c.sliding[nKv - 1]]).toEqual([true, false]);
    expect(plan.layers.map((l) => l.kvSource)).toEqual([0, 1, 2, 3, 4, 3, 3, 4]);
    for (const t of plan.tensors) {
      if (t.role === 'matrix' || t.role === 'embedding') expect({ name: t.name, rem: t.ne[0]! % 256 }).toEqual({ name: t.name, rem: 0 });
    }
    expect(planSyntheticGemma4(tinyGemma4Config({ layout: 'pruned' })).tensorCount).toBe(6 + 8 * 17 - 3 * 3);
    expect(planSyntheticGemma4(tinyGemma4Config({ fusedQkv: true })).tensorCount).toBe(6 + 8 * 15);
    expect(planSyntheticGemma4(tinyGemma4Config({ omitV: true })).tensorCount).toBe(6 + 8 * 16);
    const fused = planSyntheticGemma4(tinyGemma4Config({ fusedQkv: true })).tensors.find((t) => t.name === 'blk.2.attn_qkv.weight');
    expect(fused?.ne).toEqual([256, 1024 + 512 + 512]);
  });

  test('type overrides by name and regex; invalid configs are refused', () => {
    const plan = planSyntheticGemma4(
      tinyGemma4Config({ weightType: 'q8_0', typeOverrides: { 'token_embd.weight': 'f16', 'blk\\.\\d+\\.ffn_(gate|up)\\.weight': 'q4_0' } }),
    );
    const type = (n: string): string => plan.tensors.find((t) => t.name === n)!.typeName;
    expect(type('token_embd.weight')).toBe('f16');
    expect(type('blk.3.ffn_up.weight')).toBe('q4_0');
    expect(type('blk.3.ffn_down.weight')).toBe('q8_0');
    expect(type('blk.3.ffn_norm.weight')).toBe('f32');
    expect(() => planSyntheticGemma4(tinyGemma4Config({ typeOverrides: { 'blk.0.attn_norm.weight': 'f16' } }))).toThrow(/always f32/);
    expect(() => planSyntheticGemma4(tinyGemma4Config({ sliding: [true, true, false, false, true, true, true, false] }))).toThrow(/sliding then full/);
    expect(() => planSyntheticGemma4(tinyGemma4Config({ fusedQkv: true, omitV: true }))).toThrow(/fusedQkv/);
    expect(() => planSyntheticGemma4(tinyGemma4Config({ nEmbd: 250, weightType: 'q8_0' }))).toThrow(/block size|multiple/);
  });
});

// ---------------------------------------------------------------- writing

describe('writeSyntheticGemma4', () => {
  const cfg = smallConfig({ weightType: 'q8_0', typeOverrides: { 'blk.1.attn_q.weight': 'f32' } });
  const file = path.join(tmpRoot, 'tiny.gguf');
  let summary: ReturnType<typeof writeSyntheticGemma4>;
  const progress: number[] = [];
  beforeAll(() => {
    summary = writeSyntheticGemma4(file, cfg, { onProgress: (p) => progress.push(p.tensorIndex) });
  });

  test('the file matches the plan: keys, tensors, offsets, size', () => {
    const plan = planSyntheticGemma4(cfg);
    const g = parseGguf(file);
    expect(fs.statSync(file).size).toBe(plan.fileSize);
    expect(summary.tensorCount).toBe(142);
    expect(progress).toEqual(Array.from({ length: 142 }, (_, i) => i));
    expect(g.tensors.map((t) => [t.name, t.ne, t.type, t.offset])).toEqual(plan.tensors.map((t) => [t.name, [...t.ne], t.type, t.offset]));
    expect(g.dataOffset).toBe(plan.dataOffset);
    const v = (k: string): unknown => g.kv.get(k)?.value;
    expect(v('general.architecture')).toBe('gemma4');
    expect(v('gemma4.block_count')).toBe(8);
    expect(v('gemma4.embedding_length')).toBe(256);
    expect(v('gemma4.feed_forward_length')).toEqual([512, 512, 512, 512, 512, 1024, 1024, 1024]);
    expect(v('gemma4.attention.key_length')).toBe(512);
    expect(v('gemma4.attention.key_length_swa')).toBe(256);
    expect(v('gemma4.rope.dimension_count')).toBe(512);
    expect(v('gemma4.rope.dimension_count_swa')).toBe(256);
    expect(v('gemma4.rope.freq_base')).toBe(1e6);
    expect(v('gemma4.rope.freq_base_swa')).toBe(1e4);
    expect(v('gemma4.attention.sliding_window')).toBe(6);
    expect(v('gemma4.attention.sliding_window_pattern')).toEqual([true, true, false, true, false, true, true, false]);
    expect(v('gemma4.attention.shared_kv_layers')).toBe(3);
    expect(v('gemma4.attention.layer_norm_rms_epsilon')).toBeCloseTo(1e-6, 12);
    expect(v('gemma4.embedding_length_per_layer_input')).toBe(256);
    expect(v('gemma4.final_logit_softcapping')).toBe(30);
    expect(v('tokenizer.ggml.model')).toBe('gemma4');
    expect((v('tokenizer.ggml.tokens') as string[]).length).toBe(1024);
    expect([v('tokenizer.ggml.bos_token_id'), v('tokenizer.ggml.eos_token_id'), v('tokenizer.ggml.unknown_token_id'), v('tokenizer.ggml.padding_token_id'), v('tokenizer.ggml.mask_token_id')]).toEqual([2, 1, 3, 0, 4]);
    expect([v('tokenizer.ggml.add_bos_token'), v('tokenizer.ggml.add_space_prefix')]).toEqual([true, false]);
  });

  test('tensor bytes are the encoded generator values; rope_freqs and layer scalars as specified', () => {
    const g = parseGguf(file);
    const bytesOf = (name: string, n: number): Buffer => {
      const t = g.tensors.find((x) => x.name === name)!;
      return g.buf.subarray(g.dataOffset + t.offset, g.dataOffset + t.offset + n);
    };
    const rope = new Float32Array(Uint8Array.from(bytesOf('rope_freqs.weight', 1024)).buffer);
    expect([...rope.subarray(0, 64)].every((x) => x === 1)).toBe(true);
    expect([...rope.subarray(64)].every((x) => x === 1e30 || Math.abs(x - 1e30) < 1e24)).toBe(true);
    for (let l = 0; l < 8; l++) {
      const s = bytesOf(`blk.${l}.layer_output_scale.weight`, 4).readFloatLE(0);
      expect(s).toBeGreaterThan(0.9);
      expect(s).toBeLessThan(1);
    }
    const q = syntheticTensorValues(cfg, 'blk.0.attn_q.weight');
    expect(bytesOf('blk.0.attn_q.weight', rowSize(GgmlType.Q8_0, 256) * 512).equals(Buffer.from(quantize(GgmlType.Q8_0, q)))).toBe(true);
    const q1 = syntheticTensorValues(cfg, 'blk.1.attn_q.weight');
    expect(bytesOf('blk.1.attn_q.weight', q1.length * 4).equals(Buffer.from(q1.buffer))).toBe(true);
    // scales (numerics.md): linear N(0, 1/sqrt(in)), embeddings N(0, 1/sqrt(d)), branch post-norms ~0.2
    const std = (a: Float32Array): number => Math.sqrt(a.reduce((s, x) => s + x * x, 0) / a.length);
    expect(std(q)).toBeCloseTo(1 / 16, 2);
    expect(std(syntheticTensorValues(cfg, 'token_embd.weight'))).toBeCloseTo(1 / 16, 2);
    const post = syntheticTensorValues(cfg, 'blk.0.post_ffw_norm.weight');
    expect(Math.min(...post)).toBeGreaterThan(0.15);
    expect(Math.max(...post)).toBeLessThan(0.25);
    const qn = syntheticTensorValues(cfg, 'blk.0.attn_q_norm.weight'); // w^2 * sqrt(256) ≈ 2
    expect(std(qn) ** 2 * 16).toBeCloseTo(2, 0);
  });

  test('deterministic: same seed -> identical bytes; a type override changes only that tensor', () => {
    const again = path.join(tmpRoot, 'tiny-again.gguf');
    writeSyntheticGemma4(again, cfg);
    expect(sha(again)).toBe(sha(file));
    // values are keyed by (seed, tensor name), independent of types and of other tensors
    const a = syntheticTensorValues(cfg, 'blk.2.ffn_up.weight');
    const b = syntheticTensorValues(smallConfig({ weightType: 'f16', layout: 'pruned' }), 'blk.2.ffn_up.weight');
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    const c = syntheticTensorValues(smallConfig({ seed: 99 }), 'blk.2.ffn_up.weight');
    expect(Buffer.from(a.buffer).equals(Buffer.from(c.buffer))).toBe(false);
    // fused attn_qkv stacks exactly the q, k, v streams
    const fusedCfg = smallConfig({ fusedQkv: true });
    const qkv = syntheticTensorValues(fusedCfg, 'blk.0.attn_qkv.weight');
    const k = syntheticTensorValues(cfg, 'blk.0.attn_k.weight');
    expect(Buffer.from(qkv.subarray(512 * 256, 768 * 256).slice().buffer).equals(Buffer.from(k.buffer))).toBe(true);
  });
});

// ---------------------------------------------------------------- vocabulary

describe('synthetic vocabulary', () => {
  const v = buildSyntheticVocab();
  test('layout and invariants', () => {
    expect(v.tokens.length).toBe(4096);
    expect(new Set(v.tokens).size).toBe(v.tokens.length);
    expect(v.tokens.slice(0, 5)).toEqual(['<pad>', '<eos>', '<bos>', '<unk>', '<mask>']);
    expect(v.types.slice(0, 5).every((t) => t === TokenType.CONTROL)).toBe(true);
    expect([v.bos, v.eos, v.unk, v.pad, v.mask]).toEqual([2, 1, 3, 0, 4]);
    expect(v.tokens[105]).toBe('<|turn>');
    expect(v.tokens[106]).toBe('<turn|>');
    expect(v.types[v.tokens.indexOf('<|"|>')]).toBe(TokenType.USER_DEFINED);
    expect(v.tokens[107]).toBe('\n');
    expect(v.tokens[138]).toBe('▁▁');
    const bytes = v.tokens.map((t, i) => [t, i] as const).filter(([, i]) => v.types[i] === TokenType.BYTE);
    expect(bytes.length).toBe(256);
    expect(v.tokens[238]).toBe('<0x00>');
    expect(v.tokens[238 + 0xab]).toBe('<0xAB>');
    expect(v.types.filter((t) => t === TokenType.CONTROL).length).toBe(17);
    for (let c = 0x21; c <= 0x7e; c++) expect(v.tokens.includes(String.fromCharCode(c))).toBe(true);
    expect(v.tokens.includes('▁')).toBe(true);
    expect(v.tokens.includes('㊗')).toBe(true);
    expect(v.tokens.some((t) => t.includes(' '))).toBe(false);
    const set = new Set(v.tokens);
    const bad = v.merges.filter((m) => {
      const sp = m.indexOf(' ', 1);
      const a = m.slice(0, sp);
      const b = m.slice(sp + 1);
      return sp < 1 || !set.has(a) || !set.has(b) || !set.has(a + b);
    });
    expect(bad).toEqual([]);
    expect(v.merges.length).toBeGreaterThan(3000);
    expect(buildSyntheticVocab()).toBe(v); // cached
  });

  test('a realistic AR prompt is tens of tokens under plain BPE', () => {
    const rank = new Map(v.merges.map((m, i) => [m, i]));
    const bpe = (piece: string): string[] => {
      const syms = Array.from(piece);
      for (;;) {
        let best = -1;
        let bestRank = Infinity;
        for (let i = 0; i + 1 < syms.length; i++) {
          const r = rank.get(`${syms[i]} ${syms[i + 1]}`);
          if (r !== undefined && r < bestRank) {
            bestRank = r;
            best = i;
          }
        }
        if (best < 0) return syms;
        syms.splice(best, 2, syms[best]! + syms[best + 1]!);
      }
    };
    const prompt = 'Summary of the following text: <text>The model is thinking about the weather and expects the next word to describe rain.</text> <summary>';
    const toks = bpe(prompt.replace(/ /g, '▁'));
    expect(toks.every((t) => v.tokens.includes(t))).toBe(true);
    expect(toks.length).toBeGreaterThan(10);
    expect(toks.length).toBeLessThan(50);
  });
});

// ---------------------------------------------------------------- adapters

describe('adapters', () => {
  const cfg = smallConfig();
  test('PEFT folder like the published AR; LoRA GGUF with llama.cpp shapes', () => {
    const dir = path.join(tmpRoot, 'adapter');
    const ad = writePeftAdapter(dir, cfg, { rank: 8, alpha: 16, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], dtype: 'F32', seed: 3, includeHead: { seed: 4 } });
    expect(fs.readdirSync(dir).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'linear_head.pt']);
    const conf = JSON.parse(fs.readFileSync(ad.configPath, 'utf8'));
    expect(conf).toMatchObject({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 8, lora_alpha: 16, bias: 'none', fan_in_fan_out: false, use_rslora: false, use_dora: false, modules_to_save: null, inference_mode: true, rank_pattern: {}, alpha_pattern: {} });
    expect(conf.target_modules).toBe('model.language_model.layers.\\d+.self_attn.(q|k|v|o)_proj');
    // 5 KV-owning layers x 4 modules + 3 shared layers x (q, o)
    expect(ad.modules.length).toBe(5 * 4 + 3 * 2);
    expect(ad.modules.some((m) => m.layer >= 5 && (m.target === 'k_proj' || m.target === 'v_proj'))).toBe(false);
    // safetensors header: names and shapes A [r, in], B [out, r]
    const st = fs.readFileSync(ad.weightsPath);
    const hlen = Number(st.readBigUInt64LE(0));
    const header = JSON.parse(st.toString('utf8', 8, 8 + hlen));
    expect(header.__metadata__).toEqual({ format: 'pt' });
    expect(Object.keys(header).filter((k) => k !== '__metadata__').length).toBe(52);
    expect(header['base_model.model.model.language_model.layers.2.self_attn.q_proj.lora_A.weight']).toMatchObject({ dtype: 'F32', shape: [8, 256] });
    expect(header['base_model.model.model.language_model.layers.2.self_attn.q_proj.lora_B.weight']).toMatchObject({ dtype: 'F32', shape: [1024, 8] });
    expect(header['base_model.model.model.language_model.layers.6.self_attn.o_proj.lora_A.weight']).toMatchObject({ shape: [8, 512] });
    expect(header['base_model.model.model.language_model.layers.6.self_attn.k_proj.lora_A.weight']).toBeUndefined();
    // the delta is noticeable: s * ||B A x|| / ||x|| ≈ bScale for unit-RMS x
    const m = ad.modules.find((x) => x.modulePath.endsWith('layers.0.self_attn.q_proj'))!;
    const x = Float32Array.from({ length: 256 }, (_, i) => Math.sin(i * 1.7) * Math.SQRT2);
    const ax = new Float64Array(8);
    for (let r = 0; r < 8; r++) for (let i = 0; i < 256; i++) ax[r]! += m.A[r * 256 + i]! * x[i]!;
    let ss = 0;
    for (let o = 0; o < m.outDim; o++) {
      let y = 0;
      for (let r = 0; r < 8; r++) y += m.B[o * 8 + r]! * ax[r]!;
      ss += (m.scale * y) ** 2;
    }
    const rel = Math.sqrt(ss / m.outDim);
    expect(rel).toBeGreaterThan(0.08);
    expect(rel).toBeLessThan(0.5);
    expect(ad.head?.weight.length).toBe(256 * 256);
    expect(fs.statSync(ad.headPath!).size).toBeGreaterThan(256 * 256 * 4);

    const ggufPath = path.join(tmpRoot, 'lora.gguf');
    const res = writeLlamaCppLoraGguf(ggufPath, cfg, ad);
    expect(res.alpha).toBe(16);
    const g = parseGguf(ggufPath);
    expect(g.kv.get('general.type')?.value).toBe('adapter');
    expect(g.kv.get('general.architecture')?.value).toBe('gemma4');
    expect(g.kv.get('adapter.type')?.value).toBe('lora');
    expect(g.kv.get('adapter.lora.alpha')).toEqual({ type: 6, value: 16 });
    expect(g.tensors.length).toBe(52);
    const a = g.tensors.find((t) => t.name === 'blk.2.attn_q.weight.lora_a')!;
    const b = g.tensors.find((t) => t.name === 'blk.2.attn_q.weight.lora_b')!;
    expect([a.ne, a.type, b.ne, b.type]).toEqual([[256, 8], 0, [8, 1024], 0]);
    const bBytes = g.buf.subarray(g.dataOffset + b.offset, g.dataOffset + b.offset + 8 * 1024 * 4);
    const mb = ad.modules.find((x) => x.modulePath.endsWith('layers.2.self_attn.q_proj'))!.B;
    expect(bBytes.equals(Buffer.from(mb.buffer, mb.byteOffset, mb.byteLength))).toBe(true);
    expect(g.tensors.some((t) => t.name.startsWith('blk.6.attn_k'))).toBe(false);
  });

  test('rsLoRA, rank patterns, MLP targets, 16-bit storage', () => {
    const rs = writePeftAdapter(path.join(tmpRoot, 'rs'), cfg, { rank: 4, alpha: 8, targets: ['q_proj'], layers: [0, 6], dtype: 'BF16', seed: 1, useRslora: true });
    expect(rs.modules.map((m) => m.scale)).toEqual([4, 4]); // 8 / sqrt(4)
    expect(rs.config.target_modules).toBe('model.language_model.layers.(0|6).self_attn.(q)_proj');
    expect(rs.modules[0]!.A.every((x) => ((fp32ToBf16Bits(x) << 16) >>> 0) === new Uint32Array(Float32Array.of(x).buffer)[0])).toBe(true);
    expect(writeLlamaCppLoraGguf(path.join(tmpRoot, 'rs.gguf'), cfg, rs).alpha).toBe(16); // 4 * 4: scale = alpha / r
    const pat = writePeftAdapter(path.join(tmpRoot, 'pat'), cfg, {
      rank: 8,
      targets: ['q_proj', 'gate_proj', 'up_proj', 'down_proj'],
      dtype: 'F16',
      seed: 2,
      rankPattern: { 'layers.3.mlp.down_proj': 4 },
    });
    const down3 = pat.modules.find((m) => m.modulePath === 'model.language_model.layers.3.mlp.down_proj')!;
    expect([down3.rank, down3.inDim, down3.outDim]).toEqual([4, 512, 256]);
    expect(pat.modules.find((m) => m.modulePath === 'model.language_model.layers.6.mlp.up_proj')!.outDim).toBe(1024);
    expect(pat.config.target_modules).toBe('model.language_model.layers.\\d+.(self_attn|mlp).(q|gate|up|down)_proj');
    // plain LoRA with a rank pattern: s·r = alpha for every module, so llama.cpp's alpha/r still matches
    expect(writeLlamaCppLoraGguf(path.join(tmpRoot, 'pat.gguf'), cfg, pat).alpha).toBe(16);
    const bad = writePeftAdapter(path.join(tmpRoot, 'bad'), cfg, { rank: 8, targets: ['q_proj'], seed: 2, useRslora: true, rankPattern: { 'layers.0.self_attn.q_proj': 4 } });
    expect(() => writeLlamaCppLoraGguf(path.join(tmpRoot, 'bad.gguf'), cfg, bad)).toThrow(/one alpha/);
    expect(() => writePeftAdapter(path.join(tmpRoot, 'x'), smallConfig({ fusedQkv: true }), { targets: ['q_proj'], seed: 1 })).toThrow(/fused/);
  });
});

// ---------------------------------------------------------------- demo cache

describe('writeDemoFiles', () => {
  test('creates the demo folder once, atomically, and reuses it', () => {
    const cache = path.join(tmpRoot, 'cache');
    const d = writeDemoFiles(path.join(cache, 'demo-v2'));
    expect(d.dir).toBe(path.join(cache, 'demo-v2'));
    expect(fs.readdirSync(cache)).toEqual(['demo-v2']); // no temp folder left behind
    expect(fs.readdirSync(d.adapter).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'linear_head.pt']);
    const g = parseGguf(d.model);
    expect(g.tensors.length).toBe(601); // E2B's block structure: 6 + 35 × 17, as Google's checkpoint converts
    expect(g.tensors.find((t) => t.name === 'blk.0.attn_q.weight')!.type).toBe(GgmlType.Q8_0);
    expect(fs.statSync(d.model).size).toBeLessThan(32 * 1024 * 1024);
    const mtime = fs.statSync(d.model).mtimeMs;
    const again = writeDemoFiles(path.join(cache, 'demo-v2'));
    expect(again.model).toBe(d.model);
    expect(fs.statSync(d.model).mtimeMs).toBe(mtime);
  }, 60000);
});
