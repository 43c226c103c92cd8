/**
 * The engine's forward API (native binding, below the TypeScript layer): block capture (any subset, all or
 * last token), early stop, threads, batches of prompts of different lengths, per-position embedding
 * overrides, abort, and argument errors. Exact equalities are exact on purpose: these are the same
 * computations reached through different options, so they must agree bit for bit.
 */
import { loadNative, type NativeModel, type NativeCapture, type NativeForwardOptions } from '../src/native';
import { tinyModel, testTokens, relRms } from './helpers/models';

const model = tinyModel('f32-full');
const V = model.config.vocab.tokens.length;
const d = model.config.nEmbd;
const L = model.config.nLayer;
let m: NativeModel;
let m1: NativeModel;

beforeAll(async () => {
  const b = loadNative('cpu').binding;
  m = await b.openModel(model.path, { threads: 2 });
  m1 = await b.openModel(model.path, { threads: 1 });
});
afterAll(() => {
  m.close();
  m1.close();
});

const caps = async (mm: NativeModel, tokens: Int32Array[], o: NativeForwardOptions) => mm.forward(tokens, o);
const named = (c: NativeCapture[], n: string) => c.find((x) => x.name === n)!.data;

test('capturing a subset of blocks, all tokens: each block has T rows of d values', async () => {
  const t = testTokens(17, 1, V);
  const [c] = await caps(m, [t], { captureLayers: [0, 3, L - 1], allTokens: true });
  expect(c.map((x) => x.layer)).toEqual([0, 3, L - 1]);
  for (const x of c) {
    expect(x.rows).toBe(17);
    expect(x.data.length).toBe(17 * d);
  }
});

test('last-token capture is the last row of the all-token capture', async () => {
  const t = testTokens(17, 2, V);
  const [all] = await caps(m, [t], { captureLayers: [5], allTokens: true });
  const [last] = await caps(m, [t], { captureLayers: [5], allTokens: false });
  expect(last[0].rows).toBe(1);
  expect(last[0].firstRow).toBe(16);
  expect(Array.from(last[0].data)).toEqual(Array.from(all[0].data.subarray(16 * d)));
});

test('stopping after block k gives exactly block k of the full pass', async () => {
  const t = testTokens(20, 3, V);
  const [full] = await caps(m, [t], { captureLayers: [3], allTokens: true });
  const [early] = await caps(m, [t], { lastLayer: 3, captureLayers: [3], allTokens: true });
  expect(Array.from(early[0].data)).toEqual(Array.from(full[0].data));
});

test('one thread and two threads give identical results', async () => {
  const t = testTokens(21, 4, V);
  const [a] = await caps(m, [t], { captureLayers: [L - 1], allTokens: true });
  const [b] = await caps(m1, [t], { captureLayers: [L - 1], allTokens: true });
  expect(Array.from(a[0].data)).toEqual(Array.from(b[0].data));
});

test('a batch of prompts of different lengths equals the prompts run one by one', async () => {
  const ps = [testTokens(5, 5, V), testTokens(30, 6, V), testTokens(1, 7, V), testTokens(12, 8, V)];
  const batch = await caps(m, ps, { captureLayers: [2, L - 1], allTokens: false });
  expect(batch.length).toBe(4);
  for (let i = 0; i < ps.length; i++) {
    const [one] = await caps(m, [ps[i]], { captureLayers: [2, L - 1], allTokens: false });
    expect(Array.from(batch[i][1].data)).toEqual(Array.from(one[1].data));
  }
});

describe('embedding override at one position', () => {
  const t = testTokens(16, 9, V);
  const p = 7;
  const scaledRow = async (tokens: Int32Array, pos: number) => {
    const [c] = await caps(m, [tokens], { captureLayers: [], observe: ['inp_scaled'], lastLayer: 0 });
    return named(c, 'inp_scaled').slice(pos * d, (pos + 1) * d);
  };

  test("replacing a position with its own scaled embedding changes nothing", async () => {
    const own = await scaledRow(t, p);
    const [a] = await caps(m, [t], { captureLayers: [L - 1], allTokens: true });
    const [b] = await caps(m, [t], { captureLayers: [L - 1], allTokens: true, overrides: [[{ position: p, values: own }]] });
    expect(Array.from(b[0].data)).toEqual(Array.from(a[0].data));
  });

  test('the override is the residual input at that position, and only later positions change (causal)', async () => {
    const v = new Float32Array(d).map((_, i) => Math.sin(i) * 1.5);
    const [a] = await caps(m, [t], { captureLayers: [L - 1], allTokens: true });
    const [b] = await caps(m, [t], { captureLayers: [L - 1], allTokens: true, observe: ['inp_scaled'], overrides: [[{ position: p, values: v }]] });
    expect(Array.from(named(b, 'inp_scaled').subarray(p * d, (p + 1) * d))).toEqual(Array.from(v));
    const out = b.find((x) => x.layer === L - 1 && !x.name)!;
    expect(Array.from(out.data.subarray(0, p * d))).toEqual(Array.from(a[0].data.subarray(0, p * d)));
    expect(relRms(out.data.subarray(p * d), a[0].data.subarray(p * d))).toBeGreaterThan(1e-3);
  });

  test('it feeds the per-layer-input projection, while the per-layer token lookup stays by id', async () => {
    // z = (RMSNorm(W e / √d) + P[id]·√P) / √2 is additive in the (embedding, id) parts, so swapping the
    // embeddings of two tokens A and B at p must satisfy z(e_B, A) + z(e_A, B) = z(e_A, A) + z(e_B, B).
    const A = t[p];
    const B = (A + 101) % V;
    const tB = Int32Array.from(t);
    tB[p] = B;
    const eA = await scaledRow(t, p), eB = await scaledRow(tB, p);
    const z = async (tokens: Int32Array, e?: Float32Array) => {
      const [c] = await caps(m, [tokens], { captureLayers: [], observe: ['inp_per_layer'], lastLayer: 0, overrides: e ? [[{ position: p, values: e }]] : [] });
      const all = named(c, 'inp_per_layer');
      const w = all.length / tokens.length;
      return all.slice(p * w, (p + 1) * w);
    };
    const zAA = await z(t), zBB = await z(tB), zBA = await z(t, eB), zAB = await z(tB, eA);
    const lhs = zBA.map((x, i) => x + zAB[i]), rhs = zAA.map((x, i) => x + zBB[i]);
    expect(relRms(lhs, rhs)).toBeLessThan(1e-6);
    // and the lookup really is by id: overriding A's position with e_B is not the same as writing token B there
    expect(relRms(zBA, zBB)).toBeGreaterThan(1e-2);
  });
});

describe('argument errors and abort', () => {
  const expectCode = async (p: Promise<unknown>, code: string, msg?: RegExp) => {
    await expect(p).rejects.toMatchObject({ code });
    if (msg) await expect(p).rejects.toThrow(msg);
  };
  test('empty prompt', () => expectCode(caps(m, [new Int32Array(0)], { captureLayers: [0] }), 'ERR_NLA_INVALID_ARG', /empty/));
  test('token outside the vocabulary', () => expectCode(caps(m, [Int32Array.from([2, V + 5])], { captureLayers: [0] }), 'ERR_NLA_INVALID_ARG', /outside the vocabulary/));
  test('capture past the last block computed', () => expectCode(caps(m, [testTokens(4, 1, V)], { lastLayer: 2, captureLayers: [3] }), 'ERR_NLA_INVALID_ARG', /capture layer 3/));
  test('last layer out of range', () => expectCode(caps(m, [testTokens(4, 1, V)], { lastLayer: L, captureLayers: [] }), 'ERR_NLA_INVALID_ARG'));
  test('override of the wrong width', () =>
    expectCode(caps(m, [testTokens(4, 1, V)], { captureLayers: [0], overrides: [[{ position: 1, values: new Float32Array(3) }]] }), 'ERR_NLA_INVALID_ARG', /override/));
  test('non-finite override', () =>
    expectCode(caps(m, [testTokens(4, 1, V)], { captureLayers: [0], overrides: [[{ position: 1, values: new Float32Array(d).fill(NaN) }]] }), 'ERR_NLA_INVALID_ARG', /non-finite/));
  test('an abort flag that is already set stops the pass', async () => {
    const flag = new Int32Array(new SharedArrayBuffer(4));
    flag[0] = 1;
    await expectCode(m.forward([testTokens(8, 1, V)], { captureLayers: [0] }, flag), 'ERR_NLA_ABORTED');
  });
  test('a closed model rejects further calls', async () => {
    const c = await loadNative('cpu').binding.openModel(model.path, { threads: 1 });
    c.close();
    expect(() => c.info()).toThrow(expect.objectContaining({ code: 'ERR_NLA_CLOSED' }));
  });
});
