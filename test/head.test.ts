/** LinearHead: loading (torch files, arrays, parsed safetensors), validation, apply(), and writing. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NlaError } from '../src/errors';
import { LinearHead } from '../src/head';
import { readTorchStateDict } from '../src/formats/torch';
import { headToTorchBuffer, writeTorchStateDict } from '../tools/formats/torch-writer';

const FIXTURES = path.join(__dirname, 'fixtures', 'torch');
const fixture = (name: string): Buffer => fs.readFileSync(path.join(FIXTURES, name));
interface ExpectedTensor {
  shape: number[];
  values: number[];
}
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8')) as {
  files: Record<string, { tensors?: Record<string, ExpectedTensor> }>;
};

function nlaErrorOf(fn: () => unknown): NlaError {
  try {
    fn();
  } catch (err) {
    if (err instanceof NlaError) return err;
    throw new Error(`expected an NlaError, got ${String(err)}`);
  }
  throw new Error('expected an NlaError, but nothing was thrown');
}

async function nlaErrorOfAsync(p: Promise<unknown>): Promise<NlaError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof NlaError) return err;
    throw new Error(`expected an NlaError, got ${String(err)}`);
  }
  throw new Error('expected an NlaError, but nothing was rejected');
}

/** W h + b computed independently: float64 products and sum in index order, rounded once to float32. */
function reference(w: ArrayLike<number>, b: ArrayLike<number>, h: ArrayLike<number>, outDim: number, inDim: number): number[] {
  const out: number[] = [];
  for (let o = 0; o < outDim; o++) {
    let acc = 0;
    for (let i = 0; i < inDim; i++) acc += Math.fround(w[o * inDim + i]!) * Math.fround(h[i]!);
    out.push(Math.fround(acc + Math.fround(b[o]!)));
  }
  return out;
}

/** Deterministic pseudo-random float32 values in [-1, 1). */
function seeded(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 31 - 1;
  }
  return a;
}

const torchBytes = (tensors: Record<string, { shape: number[]; data: Float32Array }>): Buffer =>
  writeTorchStateDict(tensors, { archiveName: 'linear_head' });

describe('LinearHead from torch files', () => {
  it.each(['linear_8x8_params.pt', 'linear_8x8_plain.pt', 'linear_8x8_fp16.pt', 'linear_4x3_bf16_params.pt', 'linear_4x3_fp64.pt'])(
    'loads %s with the values torch reads and applies W h + b',
    (name) => {
      const want = expected.files[name]!.tensors!;
      const head = LinearHead.fromTorchBuffer(fixture(name), name);
      const [outDim, inDim] = want['weight']!.shape as [number, number];
      expect({ inDim: head.inDim, outDim: head.outDim }).toEqual({ inDim, outDim });
      expect(Array.from(head.weight)).toEqual(want['weight']!.values.map(Math.fround));
      expect(Array.from(head.bias)).toEqual(want['bias']!.values.map(Math.fround));
      const h = seeded(inDim, 7);
      expect(Array.from(head.apply(h))).toEqual(reference(want['weight']!.values, want['bias']!.values, h, outDim, inDim));
    },
  );

  it('loads from a file path', async () => {
    const head = await LinearHead.fromTorchFile(path.join(FIXTURES, 'linear_8x8_params.pt'));
    expect(head.outDim).toBe(8);
    expect(Array.from(head.bias)).toEqual(expected.files['linear_8x8_params.pt']!.tensors!['bias']!.values.map(Math.fround));
  });

  it('reports a missing file as ERR_NLA_IO and a malformed one as ERR_NLA_HEAD_INVALID', async () => {
    const missing = await nlaErrorOfAsync(LinearHead.fromTorchFile(path.join(os.tmpdir(), 'nla-ar-no-such-head.pt')));
    expect(missing.code).toBe('ERR_NLA_IO');
    expect(missing.message).toMatch(/nla-ar-no-such-head\.pt/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nla-ar-head-'));
    try {
      const junk = path.join(dir, 'linear_head.pt');
      fs.writeFileSync(junk, 'not a zip at all');
      const bad = await nlaErrorOfAsync(LinearHead.fromTorchFile(junk));
      expect(bad.code).toBe('ERR_NLA_HEAD_INVALID');
      expect(bad.message).toMatch(/^linear_head\.pt: /);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses the malicious archive with ERR_NLA_UNSAFE_PICKLE', () => {
    const err = nlaErrorOf(() => LinearHead.fromTorchBuffer(fixture('malicious.pt'), 'malicious.pt'));
    expect(err.code).toBe('ERR_NLA_UNSAFE_PICKLE');
    expect(fs.existsSync(path.join(process.cwd(), 'nla_ar_pwned_marker.txt'))).toBe(false);
  });

  it('accepts one common key prefix (head.weight / head.bias)', () => {
    const w = seeded(6, 1);
    const b = seeded(2, 2);
    const head = LinearHead.fromTorchBuffer(torchBytes({ 'head.weight': { shape: [2, 3], data: w }, 'head.bias': { shape: [2], data: b } }));
    expect(Array.from(head.weight)).toEqual(Array.from(w));
    expect(Array.from(head.bias)).toEqual(Array.from(b));
  });

  it.each([
    ['mismatched prefixes', { 'a.weight': [2, 3], 'b.bias': [2] }, /do not share a prefix/],
    ['two layers', { 'a.weight': [2, 3], 'a.bias': [2], 'b.weight': [2, 3], 'b.bias': [2] }, /exactly two tensors/],
    ['no weight', { kernel: [2, 3], bias: [2] }, /expected keys 'weight' and 'bias'/],
    ['a 1-D weight', { weight: [6], bias: [2] }, /weight must be 2-D \[out, in\], got shape \[6\]/],
    ['a 2-D bias', { weight: [2, 3], bias: [2, 1] }, /bias must be 1-D \[out\], got shape \[2, 1\]/],
    ['a bias length mismatch', { weight: [2, 3], bias: [3] }, /bias has 3 values but weight has 2 output rows/],
    ['an empty weight', { weight: [0, 3], bias: [0] }, /is empty/],
  ])('refuses a state_dict with %s (ERR_NLA_HEAD_INVALID)', (_label, shapes, message) => {
    const tensors = Object.fromEntries(
      Object.entries(shapes).map(([k, shape]) => [k, { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) }]),
    );
    const err = nlaErrorOf(() => LinearHead.fromTorchBuffer(torchBytes(tensors), 'h.pt'));
    expect(err.code).toBe('ERR_NLA_HEAD_INVALID');
    expect(err.message).toMatch(message);
  });

  it('refuses non-finite weights, naming the element', () => {
    const w = new Float32Array(6);
    w[4] = NaN;
    const err = nlaErrorOf(() => LinearHead.fromTorchBuffer(torchBytes({ weight: { shape: [2, 3], data: w }, bias: { shape: [2], data: new Float32Array(2) } })));
    expect(err.code).toBe('ERR_NLA_HEAD_INVALID');
    expect(err.message).toMatch(/weight\[1, 1\] is NaN/);
  });
});

describe('LinearHead.apply', () => {
  const inDim = 5;
  const outDim = 3;
  const w = seeded(inDim * outDim, 11);
  const b = seeded(outDim, 12);
  const head = LinearHead.fromArrays(w, b, { inDim, outDim });

  it('computes W h + b with double accumulation and one float32 rounding', () => {
    const h = seeded(inDim, 13);
    const out = head.apply(h);
    expect(out).toBeInstanceOf(Float32Array);
    expect(Array.from(out)).toEqual(reference(w, b, h, outDim, inDim));
  });

  it('gives the same result for number[] input (rounded to float32 first)', () => {
    const h = seeded(inDim, 14);
    expect(Array.from(head.apply(Array.from(h)))).toEqual(Array.from(head.apply(h)));
    const precise = [0.1, 0.2, 0.3, 0.4, 0.5];
    expect(Array.from(head.apply(precise))).toEqual(Array.from(head.apply(Float32Array.from(precise))));
  });

  it('keeps cancellation exact where float32 accumulation would not', () => {
    // 1e8 + 1 - 1e8: float32 accumulation gives 0, double gives 1.
    const h2 = LinearHead.fromArrays([1e8, 1, -1e8], [0], { inDim: 3, outDim: 1 });
    expect(h2.apply([1, 1, 1])[0]).toBe(1);
  });

  it.each([
    ['NaN', [0, NaN, 0, 0, 0], /h\[1\] is NaN, not a finite number/],
    ['Infinity', [0, 0, 0, Infinity, 0], /h\[3\] is Infinity/],
    ['a float32 overflow', [0, 0, 1e39, 0, 0], /h\[2\] = 1e\+39 overflows float32/],
    ['a string', [0, 0, 0, 0, '1'], /h\[4\] is 1, not a finite number/],
    ['the wrong length', [1, 2, 3], /h has 3 values, the head expects 5/],
  ])('refuses %s with ERR_NLA_INVALID_ARG', (_label, h, message) => {
    const err = nlaErrorOf(() => head.apply(h as number[]));
    expect(err.code).toBe('ERR_NLA_INVALID_ARG');
    expect(err.message).toMatch(message);
  });

  it('refuses a non-array input', () => {
    expect(nlaErrorOf(() => head.apply('12345' as unknown as number[])).code).toBe('ERR_NLA_INVALID_ARG');
    expect(nlaErrorOf(() => head.apply(new Float64Array(5) as unknown as Float32Array)).code).toBe('ERR_NLA_INVALID_ARG');
  });

  it('does not modify its input', () => {
    const h = seeded(inDim, 15);
    const copy = h.slice();
    head.apply(h);
    expect(Array.from(h)).toEqual(Array.from(copy));
  });
});

describe('LinearHead.fromArrays', () => {
  it('copies the inputs: later changes by the caller do not reach the head, and the inputs are untouched', () => {
    const w = seeded(6, 21);
    const b = seeded(2, 22);
    const wCopy = w.slice();
    const bCopy = b.slice();
    const head = LinearHead.fromArrays(w, b, { inDim: 3, outDim: 2 });
    expect(head.weight).not.toBe(w);
    expect(head.bias).not.toBe(b);
    const before = Array.from(head.apply([1, 2, 3]));
    w.fill(100);
    b.fill(-100);
    expect(Array.from(head.weight)).toEqual(Array.from(wCopy));
    expect(Array.from(head.apply([1, 2, 3]))).toEqual(before);
    // and the head never wrote into the caller's arrays
    const w2 = wCopy.slice();
    LinearHead.fromArrays(w2, bCopy, { inDim: 3, outDim: 2 }).apply([1, 1, 1]);
    expect(Array.from(w2)).toEqual(Array.from(wCopy));
  });

  it.each([
    ['a weight of the wrong length', new Float32Array(5), new Float32Array(2), { inDim: 3, outDim: 2 }, /weight has 5 values/],
    ['a bias of the wrong length', new Float32Array(6), new Float32Array(3), { inDim: 3, outDim: 2 }, /bias has 3 values but weight has 2 output rows/],
    ['a zero dimension', new Float32Array(0), new Float32Array(0), { inDim: 0, outDim: 2 }, /inDim must be a positive integer/],
    ['a fractional dimension', new Float32Array(6), new Float32Array(2), { inDim: 3, outDim: 2.5 }, /outDim must be a positive integer/],
    ['a NaN bias', new Float32Array(6), new Float32Array([0, NaN]), { inDim: 3, outDim: 2 }, /bias\[1\] is NaN/],
  ])('refuses %s with ERR_NLA_INVALID_ARG', (_label, w, b, dims, message) => {
    const err = nlaErrorOf(() => LinearHead.fromArrays(w, b, dims));
    expect(err.code).toBe('ERR_NLA_INVALID_ARG');
    expect(err.message).toMatch(message);
  });
});

describe('LinearHead.fromSafetensors (tensors decoded by the native reader)', () => {
  it('accepts weight [out, in] and bias [out], copying the data', () => {
    const weight = { shape: [2, 3], data: seeded(6, 31) };
    const bias = { shape: [2], data: seeded(2, 32) };
    const head = LinearHead.fromSafetensors({ weight, bias }, 'head.safetensors');
    expect({ inDim: head.inDim, outDim: head.outDim }).toEqual({ inDim: 3, outDim: 2 });
    expect(head.weight).not.toBe(weight.data);
    expect(Array.from(head.apply([1, 0, 0]))).toEqual([Math.fround(weight.data[0]! + bias.data[0]!), Math.fround(weight.data[3]! + bias.data[1]!)]);
  });

  it('accepts extra fields such as dtype and a common key prefix', () => {
    const head = LinearHead.fromSafetensors({
      'linear.weight': { dtype: 'F32', shape: [1, 2], data: new Float32Array([1, 2]) },
      'linear.bias': { dtype: 'F32', shape: [1], data: new Float32Array([3]) },
    } as Record<string, { shape: number[]; data: Float32Array }>);
    expect(Array.from(head.apply([1, 1]))).toEqual([6]);
  });

  it.each([
    ['a transposed weight shape', { weight: { shape: [3, 2], data: new Float32Array(6) }, bias: { shape: [2], data: new Float32Array(2) } }, /bias has 2 values but weight has 3 output rows/],
    ['a 3-D weight', { weight: { shape: [1, 2, 3], data: new Float32Array(6) }, bias: { shape: [1], data: new Float32Array(1) } }, /weight must be 2-D/],
    ['data not matching the shape', { weight: { shape: [2, 3], data: new Float32Array(5) }, bias: { shape: [2], data: new Float32Array(2) } }, /weight has 5 values/],
    ['non-Float32Array data', { weight: { shape: [1, 1], data: [1] }, bias: { shape: [1], data: new Float32Array(1) } }, /tensor 'weight' must be \{shape: number\[\], data: Float32Array\}/],
  ])('refuses %s with ERR_NLA_HEAD_INVALID', (_label, tensors, message) => {
    const err = nlaErrorOf(() => LinearHead.fromSafetensors(tensors as unknown as Record<string, { shape: number[]; data: Float32Array }>));
    expect(err.code).toBe('ERR_NLA_HEAD_INVALID');
    expect(err.message).toMatch(message);
  });
});

describe('headToTorchBuffer (test tooling)', () => {
  it('round-trips through the torch reader as nn.Parameters named weight and bias', () => {
    const head = LinearHead.fromArrays(seeded(12, 41), seeded(4, 42), { inDim: 3, outDim: 4 });
    const buf = headToTorchBuffer(head);
    const tensors = readTorchStateDict(buf);
    expect([...tensors.keys()]).toEqual(['weight', 'bias']);
    expect(tensors.get('weight')!.shape).toEqual([4, 3]);
    expect(tensors.get('weight')!.isParameter).toBe(true);
    const again = LinearHead.fromTorchBuffer(buf);
    expect(Array.from(again.weight)).toEqual(Array.from(head.weight));
    expect(Array.from(again.bias)).toEqual(Array.from(head.bias));
  });

  it('writes a 1536x1536 head at the size of the published linear_head.pt (9,445,317 bytes)', () => {
    const head = LinearHead.fromArrays(new Float32Array(1536 * 1536), new Float32Array(1536), { inDim: 1536, outDim: 1536 });
    expect(headToTorchBuffer(head).length).toBe(9_445_317);
  });
});
