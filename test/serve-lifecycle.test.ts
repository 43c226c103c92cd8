/**
 * A `nla-ar serve` process over its life: /health before the weights are loaded (the load is held by the
 * NLA_AR_TEST_LOAD_DELAY_MS test hook so that the window can be observed) and after; overload (a full queue
 * answers 429 with Retry-After while the admitted requests still get the right numbers); a client that goes away
 * mid-request; and SIGTERM with requests in flight: every request is answered or refused, none is lost, and the
 * process exits 0; --av loading the verbalizer, or failing clearly. Long explanations (hundreds of tokens) keep the
 * engine busy for real; nothing is simulated.
 */
import { Reconstructor } from '../src';
import { ensureLib } from './helpers/build';
import { demoFiles } from './helpers/demo';
import { startServer, stopProc, waitHealthy, type Server } from './helpers/serve';

const files = demoFiles();
const common = ['--model', files.model, '--ar', files.adapter, '--layer', String(files.layer)];
let ar: Reconstructor;

beforeAll(async () => {
  ensureLib();
  ar = await Reconstructor.load({ model: files.model, adapter: files.adapter, layer: files.layer, device: 'cpu', threads: 1 });
});
afterAll(() => ar?.close());

const b64 = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');

/** ~550 prompt tokens: about a second of engine time on the test model here. */
const longExplanation = (i: number) => `<explanation>${i}: ${'the tide came in over the grey stones and '.repeat(35)}</explanation>`;

async function post(server: Server, route: string, body: unknown, signal?: AbortSignal, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = await fetch(`${server.url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), signal });
  return { status: r.status, headers: r.headers, body: await r.json() };
}

test('/health is 503 until the weights and adapter are loaded, /v1 routes answer 503 NOT_READY with Retry-After; then 200', async () => {
  // --api-key given as a flag this time (test/serve.test.ts uses NLA_AR_API_KEY)
  const s = await startServer([...common, '--api-key', 'flag-key'], { NLA_AR_TEST_LOAD_DELAY_MS: '2500' });
  const auth = { authorization: 'Bearer flag-key' };
  try {
    expect((await post(s, '/v1/reconstruct', { explanations: ['a'] })).status).toBe(401); // auth first, even while loading
    const h = await fetch(`${s.url}/health`);
    expect(h.status).toBe(503);
    expect(await h.json()).toMatchObject({ status: 'loading', ar: false, av: false });
    expect((await fetch(`${s.url}/ready`)).status).toBe(503);
    const r = await post(s, '/v1/reconstruct', { explanations: ['a'] }, undefined, auth);
    expect(r.status).toBe(503);
    expect(r.body.error.code).toBe('ERR_NLA_NOT_READY');
    expect(r.body.error.message).toMatch(/loading/);
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // metrics are served while loading
    expect((await fetch(`${s.url}/metrics`)).status).toBe(200);
    await waitHealthy(s.url);
    const h2 = await fetch(`${s.url}/health`);
    expect(await h2.json()).toMatchObject({ status: 'ok', ar: true, d_model: files.config.nEmbd });
    expect((await post(s, '/v1/reconstruct', { explanations: ['a'] }, undefined, { authorization: 'Bearer NLA_AR_API_KEY' })).status).toBe(401);
    const ok = await post(s, '/v1/reconstruct', { explanations: ['a'] }, undefined, auth);
    expect(ok.status).toBe(200);
    expect(Float32Array.from(ok.body.reconstructions[0])).toEqual(await ar.reconstruct('a'));
  } finally {
    expect(await stopProc(s)).toBe(0);
  }
});

test('SIGTERM while still loading exits 0 without serving', async () => {
  const s = await startServer(common, { NLA_AR_TEST_LOAD_DELAY_MS: '1500' });
  s.kill('SIGTERM');
  expect(await s.exited).toBe(0);
  expect(s.err()).toMatch(/SIGTERM: draining/);
});

test('a model that cannot be loaded: the process says why and exits 1', async () => {
  const s = await startServer(['--model', files.model + '.missing', '--ar', files.adapter]);
  expect(await s.exited).toBe(1);
  expect(s.err()).toMatch(/ERR_NLA_IO: model file not found/);
});

test('--av DIR loads the verbalizer next to the AR: /health says av: true; an --av folder that is missing or is not an AV exits 1 saying why', async () => {
  // the AR folder has no nla_meta.yaml naming the marker of this vocabulary: the released ids are not in it
  const [s, missing, wrong] = await Promise.all([
    startServer([...common, '--av', files.av]),
    startServer([...common, '--av', files.av + '.missing']),
    startServer([...common, '--av', files.adapter]),
  ]);
  try {
    await waitHealthy(s.url);
    expect(await (await fetch(`${s.url}/health`)).json()).toMatchObject({ status: 'ok', ar: true, av: true, d_model: files.config.nEmbd });
    expect(s.err()).toMatch(/ready: cpu .*AV loaded/);
  } finally {
    expect(await stopProc(s)).toBe(0);
  }
  expect(await missing.exited).toBe(1);
  expect(missing.err()).toMatch(/ERR_NLA_IO: adapter folder not found: .*av\.missing/);
  expect(await wrong.exited).toBe(1);
  expect(wrong.err()).toMatch(/ERR_NLA_INJECTION: the AV prompt has 0 marker token/);
});

describe('under load', () => {
  let s: Server;
  beforeAll(async () => {
    // one long item per engine call, at most 3 waiting
    s = await startServer([...common, '--max-queue', '3', '--max-batch-tokens', '1000', '--max-item-tokens', '1000']);
    await waitHealthy(s.url);
  });
  afterAll(async () => {
    if (s.proc.exitCode === null) await stopProc(s);
  });

  test('a full queue answers 429 ERR_NLA_OVERLOADED with Retry-After; admitted requests get the right numbers', async () => {
    const exps = Array.from({ length: 10 }, (_, i) => longExplanation(i));
    expect(ar.tokenize(ar.prompt(exps[0])).length).toBeLessThanOrEqual(1000);
    const rs = await Promise.all(exps.map((e) => post(s, '/v1/reconstruct', { explanations: [e], encoding: 'base64' })));
    const over = rs.filter((r) => r.status === 429);
    const ok = rs.filter((r) => r.status === 200);
    expect(over.length + ok.length).toBe(10);
    expect(over.length).toBeGreaterThan(0);
    expect(ok.length).toBeGreaterThan(0);
    for (const r of over) {
      expect(r.body.error.code).toBe('ERR_NLA_OVERLOADED');
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    for (const [i, r] of rs.entries()) if (r.status === 200) expect(r.body.reconstructions[0]).toBe(b64(await ar.reconstruct(exps[i])));
    const m = await (await fetch(`${s.url}/metrics`)).text();
    expect(m).toMatch(new RegExp(`^nla_ar_errors_total\\{route="/v1/reconstruct",code="ERR_NLA_OVERLOADED"\\} ${over.length}$`, 'm'));
  });

  test('a client that disconnects mid-request does not disturb the server', async () => {
    const c = new AbortController();
    const p = post(s, '/v1/reconstruct', { explanations: [longExplanation(99), longExplanation(98)] }, c.signal);
    setTimeout(() => c.abort(), 100);
    await expect(p).rejects.toThrow();
    const r = await post(s, '/v1/reconstruct', { explanations: ['after'] });
    expect(r.status).toBe(200);
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
  });

  test('SIGTERM with requests in flight: they are all answered, later ones refused (503 or connection refused), exit 0', async () => {
    const exps = [0, 1, 2].map((i) => longExplanation(100 + i));
    const want = await ar.reconstruct(exps);
    const inflight = exps.map((e) => post(s, '/v1/reconstruct', { explanations: [e], encoding: 'base64' }));
    // wait until one runs and others wait in the queue
    for (let k = 0; ; k++) {
      const r = (await (await fetch(`${s.url}/ready`)).json()) as { queue: number };
      if (r.queue >= 1) break;
      if (k > 200) throw new Error('the requests never queued');
      await new Promise((res) => setTimeout(res, 10));
    }
    s.kill('SIGTERM');
    await s.waitFor(/SIGTERM: draining/);
    const late = await Promise.all(
      [0, 1].map(async () => {
        try {
          return await post(s, '/v1/reconstruct', { explanations: ['late'] });
        } catch (e) {
          return { status: 0, error: e as Error, headers: new Headers(), body: null };
        }
      }),
    );
    const health = await fetch(`${s.url}/health`).then((r) => r.status, () => 0);
    const done = await Promise.all(inflight);
    done.forEach((r, i) => {
      expect(r.status).toBe(200);
      expect(r.body.reconstructions[0]).toBe(b64(want[i]));
    });
    for (const r of late) {
      if (r.status === 0) expect(String(((r as { error?: Error }).error?.cause as Error | undefined)?.message ?? (r as { error?: Error }).error)).toMatch(/ECONNREFUSED/);
      else {
        expect(r.status).toBe(503);
        expect(r.body.error.code).toBe('ERR_NLA_NOT_READY');
        expect(r.body.error.message).toMatch(/shutting down/);
      }
    }
    expect([0, 503]).toContain(health);
    expect(await s.exited).toBe(0);
    expect(s.err()).toMatch(/stopped/);
  });
});
