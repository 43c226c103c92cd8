/** NLA controls: empty / gibberish baselines and cross-row identity (nla-protocol.md §4.3). */
import { Reconstructor, crossRowIdentity, gibberishLike, cosine } from '../src';
import { demoFiles } from './helpers/demo';

describe('crossRowIdentity', () => {
  test('reconstructions equal to their originals: every row identifies itself', () => {
    const a = [Float32Array.of(1, 0, 0), Float32Array.of(0, 1, 0), Float32Array.of(0, 0, 1)];
    const r = crossRowIdentity(a, a);
    expect(r.top1).toBe(1);
    expect(r.meanRank).toBe(1);
    expect(r.chance).toBeCloseTo(1 / 3, 12);
    expect(r.diagonalMean).toBeCloseTo(1, 12);
    expect(r.offDiagonalMean).toBeCloseTo(0, 12);
    expect(r.margin).toBeCloseTo(1, 12);
  });

  test('swapped reconstructions rank their own original last', () => {
    const o = [Float32Array.of(1, 0.1), Float32Array.of(0.1, 1)];
    const r = crossRowIdentity([o[1], o[0]], o);
    expect(r.top1).toBe(0);
    expect(r.meanRank).toBe(2);
    expect(r.margin).toBeLessThan(0);
    expect(r.cosines[0][1]).toBeCloseTo(1, 12);
  });

  test('mismatched row counts and single rows are argument errors', () => {
    expect(() => crossRowIdentity([Float32Array.of(1)], [Float32Array.of(1)])).toThrow(expect.objectContaining({ code: 'ERR_NLA_INVALID_ARG' }));
    expect(() => crossRowIdentity([Float32Array.of(1), Float32Array.of(2)], [Float32Array.of(1)])).toThrow(
      expect.objectContaining({ code: 'ERR_NLA_INVALID_ARG' }),
    );
  });
});

test('gibberishLike keeps the length and the whitespace, and is deterministic per seed', () => {
  const s = 'The text is about\ttides and  harbours.';
  const g = gibberishLike(s, 3);
  expect(g.length).toBe(s.length);
  expect([...g].map((c, i) => /\s/.test(c) === /\s/.test(s[i]))).not.toContain(false);
  expect(g).toBe(gibberishLike(s, 3));
  expect(g).not.toBe(gibberishLike(s, 4));
  expect(g).not.toBe(s);
});

describe('Reconstructor.controls', () => {
  let ar: Reconstructor;
  beforeAll(async () => {
    const f = demoFiles();
    ar = await Reconstructor.load({ model: f.model, adapter: f.adapter, layer: f.layer, device: 'cpu' });
  });
  afterAll(() => ar.close());

  test('each item gets its round-trip, empty and gibberish cosines; the summary averages them', async () => {
    const activation = await ar.activation('The gulls were loud over the harbour.', { layer: 7 });
    const items = [
      { activation, explanation: '<explanation>Birds by the sea.</explanation>' },
      { activation, explanation: '<explanation>A recipe for bread.</explanation>' },
    ];
    const c = await ar.controls(items, { seed: 5 });
    expect(c.items).toHaveLength(2);
    const empty = await ar.reconstruct('');
    for (let i = 0; i < 2; i++) {
      const it = c.items[i];
      expect(it.cosine).toBeCloseTo(cosine(await ar.reconstruct(items[i].explanation), activation), 12);
      expect(it.emptyCosine).toBeCloseTo(cosine(empty, activation), 12);
      expect(it.gibberishCosine).toBeCloseTo(cosine(await ar.reconstruct(gibberishLike(items[i].explanation, 5 + i)), activation), 12);
      expect(it.contentDelta).toBeCloseTo(it.cosine - it.emptyCosine, 15);
    }
    expect(c.mean.contentDelta).toBeCloseTo((c.items[0].contentDelta + c.items[1].contentDelta) / 2, 15);
    expect(c.contentDeltaSd).toBeCloseTo(Math.abs(c.items[0].contentDelta - c.items[1].contentDelta) / Math.SQRT2, 12);
  });

  test('an empty list is an argument error', async () => {
    await expect(ar.controls([])).rejects.toMatchObject({ code: 'ERR_NLA_INVALID_ARG' });
  });
});
