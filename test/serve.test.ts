/**
 * `nla-ar serve` as a real process on 127.0.0.1, driven by a real HTTP client (Node's fetch): every route in both
 * encodings, the numbers against the in-process API (bit for bit: float32 values survive JSON as shortest
 * round-trip doubles and base64 as raw bytes), every limit, malformed and ill-typed bodies, NaN in vectors, auth on
 * and off, /metrics and /openapi.json, and that dynamic batching merged concurrent requests (read from /metrics,
 * not from timing) without changing any request's numbers.
 */
import { Autoencoder, Reconstructor, cosine, directionMse, type AutoencoderRoundTrip, type Verbalization } from '../src';
import { ensureLib } from './helpers/build';
import { demoFiles } from './helpers/demo';
import { startServer, stopProc, waitHealthy, type Server } from './helpers/serve';

const files = demoFiles();
const d = files.config.nEmbd;
const actLayer = files.config.nLayer - 1;
const common = ['--model', files.model, '--ar', files.adapter, '--layer', String(files.layer)];
const LIMITS = ['--max-items', '4', '--max-item-tokens', '64', '--max-body-bytes', '65536'];

let ar: Reconstructor;
let nla: Autoencoder;
let open: Server;
let authed: Server;
let avs: Server;
/** The AV server: 4 items per request; AV prompt + max_tokens at most 400 per item; two 16-token AV items per engine call. */
const AV_LIMITS = ['--max-items', '4', '--max-item-tokens', '400', '--max-batch-tokens', '400'];
const KEY = 'k3y-with-some-length-0123456789';

beforeAll(async () => {
  ensureLib();
  ar = await Reconstructor.load({ model: files.model, adapter: files.adapter, layer: files.layer, device: 'cpu', threads: 1 });
  nla = await Autoencoder.load({ model: files.model, av: files.av, ar: files.adapter, layer: files.layer, activationLayer: actLayer, device: 'cpu', threads: 1 });
  [open, authed, avs] = await Promise.all([
    startServer([...common, ...LIMITS]),
    startServer(common, { NLA_AR_API_KEY: KEY }),
    startServer([...common, '--av', files.av, ...AV_LIMITS]),
  ]);
  await Promise.all([waitHealthy(open.url), waitHealthy(authed.url), waitHealthy(avs.url)]);
});

afterAll(async () => {
  const codes = await Promise.all([open, authed, avs].filter(Boolean).map((s) => stopProc(s)));
  await ar?.close();
  await nla?.close();
  expect(codes).toEqual(codes.map(() => 0));
});

interface Res {
  status: number;
  headers: Headers;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  text: string;
}

async function call(server: Server, route: string, body?: unknown, init: { raw?: string; headers?: Record<string, string>; method?: string } = {}): Promise<Res> {
  const method = init.method ?? (body === undefined && init.raw === undefined ? 'GET' : 'POST');
  const r = await fetch(`${server.url}${route}`, {
    method,
    headers: { ...(method === 'POST' ? { 'content-type': 'application/json' } : {}), ...init.headers },
    body: init.raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await r.text();
  let parsed: unknown = undefined;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON (e.g. /metrics) */
  }
  return { status: r.status, headers: r.headers, body: parsed, text };
}

const b64 = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
const fromB64 = (s: string) => new Float32Array(new Uint8Array(Buffer.from(s, 'base64')).buffer);

function expectError(r: Res, status: number, code: string, message?: RegExp): void {
  if (r.status !== status || r.body?.error?.code !== code) throw new Error(`expected ${status} ${code}, got ${r.status}: ${r.text}`);
  expect(typeof r.body.error.message).toBe('string');
  if (message) expect(r.body.error.message).toMatch(message);
}

function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{([^}]*)\})? ([-+\d.eE]+|NaN|\+Inf)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = Object.fromEntries((m[3] ?? '').split(',').filter(Boolean).map((kv) => kv.split('=')).map(([k, v]) => [k, v.replace(/"/g, '')]));
    if (Object.entries(labels).every(([k, v]) => ls[k] === v)) total += Number(m[4]);
  }
  return total;
}

const explanations = ['<explanation>The text discusses the weather in a coastal town.</explanation>', 'A recipe step: stirring flour into butter.', ''];
const texts = ['The harbour was grey and the gulls were loud.', 'def f(x): return x * 2'];

describe('routes (no API key)', () => {
  test('/health and /ready are 200 once loaded, with the model\'s d_model', async () => {
    const h = await call(open, '/health');
    expect(h.status).toBe(200);
    expect(h.body).toMatchObject({ status: 'ok', ar: true, av: false, d_model: d, model: 'model.gguf' });
    const r = await call(open, '/ready');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ ready: true, queue: 0 });
  });

  test('/openapi.json documents every route, generated from the request schemas', async () => {
    const r = await call(open, '/openapi.json');
    expect(r.status).toBe(200);
    expect(r.body.openapi).toBe('3.1.0');
    for (const p of ['/v1/reconstruct', '/v1/activation', '/v1/verbalize', '/v1/round-trip']) expect(r.body.paths[p].post).toBeDefined();
    for (const p of ['/health', '/ready', '/metrics']) expect(r.body.paths[p].get).toBeDefined();
    const schema = r.body.paths['/v1/reconstruct'].post.requestBody.content['application/json'].schema;
    expect(schema.required).toEqual(['explanations']);
    expect(schema.additionalProperties).toBe(false);
    expect(schema.properties.encoding.enum).toEqual(['float', 'base64']);
    expect(Object.keys(r.body.paths['/v1/round-trip'].post.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '413', '422', '429', '501', '503']));
  });

  test('POST /v1/reconstruct: float and base64 both equal the in-process API bit for bit; tokens are the AR prompt lengths', async () => {
    const want = await ar.reconstruct(explanations);
    const f = await call(open, '/v1/reconstruct', { explanations });
    expect(f.status).toBe(200);
    expect(f.body.tokens).toEqual(explanations.map((e) => ar.tokenize(ar.prompt(e)).length));
    f.body.reconstructions.forEach((v: number[], i: number) => expect(Float32Array.from(v)).toEqual(want[i]));
    const b = await call(open, '/v1/reconstruct', { explanations, encoding: 'base64' });
    expect(b.status).toBe(200);
    b.body.reconstructions.forEach((s: string, i: number) => {
      expect(typeof s).toBe('string');
      expect(s).toBe(b64(want[i]));
    });
  });

  test('POST /v1/activation: the base model\'s activation at the requested (or default) layer, both encodings', async () => {
    const want = await Promise.all(texts.map((t) => ar.activation(t, { layer: actLayer })));
    const f = await call(open, '/v1/activation', { texts, layer: actLayer });
    expect(f.status).toBe(200);
    expect(f.body.layer).toBe(actLayer);
    expect(f.body.tokens).toEqual(texts.map((t) => ar.tokenize(t).length));
    f.body.activations.forEach((v: number[], i: number) => expect(Float32Array.from(v)).toEqual(want[i]));
    // default: the released layer 23, capped at this model's last block
    const b = await call(open, '/v1/activation', { texts, encoding: 'base64' });
    expect(b.status).toBe(200);
    expect(b.body.layer).toBe(Math.min(23, files.config.nLayer - 1));
    expect(b.body.activations.map(fromB64)).toEqual(want);
    const lower = await call(open, '/v1/activation', { texts: [texts[0]], layer: 2 });
    expect(Float32Array.from(lower.body.activations[0])).toEqual(await ar.activation(texts[0], { layer: 2 }));
  });

  test('POST /v1/round-trip with given explanations: activations in either encoding, or texts; cosine and direction-MSE as the API', async () => {
    const acts = await Promise.all(texts.map((t) => ar.activation(t, { layer: actLayer })));
    const exps = [explanations[0], explanations[1]];
    const recs = await ar.reconstruct(exps);
    const r = await call(open, '/v1/round-trip', { activations: [Array.from(acts[0]), b64(acts[1])], explanations: exps });
    expect(r.status).toBe(200);
    r.body.results.forEach((x: { cosine: number; mse: number; reconstruction: number[]; explanation: string; activation?: unknown }, i: number) => {
      expect(x.explanation).toBe(exps[i]);
      expect(Float32Array.from(x.reconstruction)).toEqual(recs[i]);
      expect(x.cosine).toBe(cosine(recs[i], acts[i]));
      expect(x.mse).toBe(directionMse(recs[i], acts[i]));
      expect(x.activation).toBeUndefined();
    });
    const t = await call(open, '/v1/round-trip', { texts, explanations: exps, layer: actLayer, encoding: 'base64' });
    expect(t.status).toBe(200);
    t.body.results.forEach((x: { cosine: number; activation: string; reconstruction: string }, i: number) => {
      expect(fromB64(x.activation)).toEqual(acts[i]);
      expect(fromB64(x.reconstruction)).toEqual(recs[i]);
      expect(x.cosine).toBe(cosine(recs[i], acts[i]));
    });
  });

  test('a server started without --av refuses the verbalizer clearly (501), never fakes it: /v1/verbalize and round trips without explanations', async () => {
    const act = Array.from(await ar.activation(texts[0], { layer: actLayer }));
    expectError(await call(open, '/v1/verbalize', { activations: [act] }), 501, 'ERR_NLA_NOT_IMPLEMENTED', /no verbalizer \(AV\) in this server: start it with --av DIR/);
    expectError(await call(open, '/v1/round-trip', { activations: [act] }), 501, 'ERR_NLA_NOT_IMPLEMENTED', /verbalizer .*start the server with --av DIR/);
    expectError(await call(open, '/v1/round-trip', { texts: ['x'] }), 501, 'ERR_NLA_NOT_IMPLEMENTED');
  });

  test('malformed JSON, wrong types, missing / unknown fields are 400 ERR_NLA_INVALID_ARG', async () => {
    const bad: [string, unknown, string?][] = [
      ['/v1/reconstruct', undefined, '{"explanations": ["a",'],
      ['/v1/reconstruct', undefined, '{"explanations": [NaN]}'],
      ['/v1/reconstruct', undefined, ''],
      ['/v1/reconstruct', { explanations: [1] }],
      ['/v1/reconstruct', { explanations: 'a' }],
      ['/v1/reconstruct', { explanations: [] }],
      ['/v1/reconstruct', {}],
      ['/v1/reconstruct', [['a']]],
      ['/v1/reconstruct', 'a'],
      ['/v1/reconstruct', null],
      ['/v1/reconstruct', { explanations: ['a'], encoding: 'hex' }],
      ['/v1/reconstruct', { explanations: ['a'], explanation: 'typo' }],
      ['/v1/activation', { texts: [null] }],
      ['/v1/activation', { texts: ['a'], layer: -1 }],
      ['/v1/activation', { texts: ['a'], layer: 1.5 }],
      ['/v1/activation', { texts: ['a'], layer: '3' }],
      ['/v1/round-trip', { activations: [[1, 2]], texts: ['a'], explanations: ['a'] }],
      ['/v1/round-trip', { explanations: ['a'] }],
      ['/v1/round-trip', { texts: ['a', 'b'], explanations: ['a'] }],
      ['/v1/round-trip', { activations: [[1, 'x']], explanations: ['a'] }],
      ['/v1/round-trip', { activations: [{}], explanations: ['a'] }],
      ['/v1/reconstruct', undefined, '{"explanations": ["a"], "__proto__": {"x": 1}}'],
    ];
    for (const [route, body, raw] of bad) {
      const r = await call(open, route, body, raw !== undefined ? { raw } : {});
      try {
        expectError(r, 400, 'ERR_NLA_INVALID_ARG');
      } catch (e) {
        throw new Error(`${route} ${raw ?? JSON.stringify(body)}: ${(e as Error).message}`);
      }
    }
    // a body that is not JSON at all
    expectError(await call(open, '/v1/reconstruct', undefined, { raw: 'explanations=a', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415, 'ERR_NLA_INVALID_ARG');
  });

  test('well-formed but unusable values are 422: NaN / Inf / overflowing values, wrong length, bad base64, unknown layer', async () => {
    const act = await ar.activation(texts[0], { layer: actLayer });
    const withNaN = Float32Array.from(act);
    withNaN[3] = NaN;
    const withInf = Float32Array.from(act);
    withInf[0] = Infinity;
    const overflow = Array.from(act);
    overflow[5] = 1e39; // a finite double that is Infinity in float32
    const cases: [string, unknown, RegExp][] = [
      ['/v1/round-trip', { activations: [b64(withNaN)], explanations: ['a'] }, /activations\[0\]\[3\] is not finite/],
      ['/v1/round-trip', { activations: [b64(withInf)], explanations: ['a'] }, /not finite/],
      ['/v1/round-trip', { activations: [overflow], explanations: ['a'] }, /activations\[0\]\[5\] is not finite/],
      ['/v1/round-trip', { activations: [Array.from(act).slice(1)], explanations: ['a'] }, new RegExp(`${d - 1} values, expected d_model = ${d}`)],
      ['/v1/round-trip', { activations: [b64(act.subarray(2))], explanations: ['a'] }, new RegExp(`${d - 2} values, expected d_model`)],
      ['/v1/round-trip', { activations: ['not*base64!'], explanations: ['a'] }, /not valid base64/],
      ['/v1/round-trip', { activations: [Buffer.alloc(d * 4 + 2).toString('base64')], explanations: ['a'] }, /whole number of float32/],
      ['/v1/activation', { texts: ['a'], layer: 99 }, /layer 99 does not exist/],
      ['/v1/round-trip', { texts: ['a'], explanations: ['a'], layer: files.config.nLayer }, /does not exist/],
    ];
    for (const [route, body, msg] of cases) {
      const r = await call(open, route, body);
      try {
        expectError(r, 422, 'ERR_NLA_INVALID_ARG', msg);
      } catch (e) {
        throw new Error(`${route} ${JSON.stringify(body).slice(0, 120)}: ${(e as Error).message}`);
      }
    }
  });

  test('limits: items per request, tokens per item and body size are 413 with the limit in the message', async () => {
    expectError(await call(open, '/v1/reconstruct', { explanations: ['a', 'b', 'c', 'd', 'e'] }), 413, 'ERR_NLA_PAYLOAD_TOO_LARGE', /5 explanations .* limit is 4/);
    expectError(await call(open, '/v1/activation', { texts: Array(5).fill('a') }), 413, 'ERR_NLA_PAYLOAD_TOO_LARGE', /limit is 4/);
    const long = 'many words here '.repeat(40);
    expect(ar.tokenize(ar.prompt(long)).length).toBeGreaterThan(64);
    expectError(await call(open, '/v1/reconstruct', { explanations: ['ok', long] }), 413, 'ERR_NLA_CONTEXT_OVERFLOW', /explanations\[1\] is \d+ tokens long; the limit per item is 64/);
    expectError(await call(open, '/v1/activation', { texts: [long] }), 413, 'ERR_NLA_CONTEXT_OVERFLOW', /texts\[0\]/);
    expectError(await call(open, '/v1/round-trip', { texts: ['a'], explanations: [long] }), 413, 'ERR_NLA_CONTEXT_OVERFLOW');
    // a huge string is refused before it is tokenized
    expectError(await call(open, '/v1/reconstruct', { explanations: ['x'.repeat(64 * 64 + 1)] }), 413, 'ERR_NLA_CONTEXT_OVERFLOW', /characters long/);
    expectError(await call(open, '/v1/reconstruct', { explanations: ['y'.repeat(70_000)] }), 413, 'ERR_NLA_PAYLOAD_TOO_LARGE', /65536 bytes/);
  });

  test('unknown routes and methods are JSON 404s; the server is still healthy and /metrics counts the errors by code', async () => {
    expectError(await call(open, '/v1/nope', {}), 404, 'ERR_NLA_NOT_FOUND');
    expectError(await call(open, '/v1/reconstruct'), 404, 'ERR_NLA_NOT_FOUND'); // GET
    expect((await call(open, '/health')).status).toBe(200);
    const m = await call(open, '/metrics');
    expect(m.status).toBe(200);
    expect(m.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(metricValue(m.text, 'nla_ar_errors_total', { code: 'ERR_NLA_INVALID_ARG' })).toBeGreaterThanOrEqual(20);
    expect(metricValue(m.text, 'nla_ar_errors_total', { code: 'ERR_NLA_PAYLOAD_TOO_LARGE' })).toBeGreaterThanOrEqual(3);
    expect(metricValue(m.text, 'nla_ar_errors_total', { code: 'ERR_NLA_CONTEXT_OVERFLOW', route: '/v1/reconstruct' })).toBeGreaterThanOrEqual(2);
    expect(metricValue(m.text, 'nla_ar_errors_total', { code: 'ERR_NLA_NOT_IMPLEMENTED' })).toBe(3);
    expect(metricValue(m.text, 'nla_ar_request_duration_seconds_count', { route: '/v1/reconstruct', status: '200' })).toBeGreaterThanOrEqual(2);
    for (const name of ['nla_ar_queue_depth', 'nla_ar_queue_wait_seconds_count', 'nla_ar_batch_size_count', 'nla_ar_batch_tokens_sum', 'nla_ar_requests_in_flight'])
      expect(m.text).toMatch(new RegExp(`^${name}`, 'm'));
  });

  test('batching: 32 concurrent single-explanation requests are merged into fewer engine calls, each answer equal to its request served alone', async () => {
    const exps = Array.from({ length: 32 }, (_, i) => `<explanation>Item ${i}: ${'about the sea '.repeat(1 + (i % 3))}</explanation>`);
    const alone = await ar.reconstruct(exps);
    const before = await call(open, '/metrics');
    const calls0 = metricValue(before.text, 'nla_ar_batch_size_count', { kind: 'reconstruct' });
    const items0 = metricValue(before.text, 'nla_ar_batch_size_sum', { kind: 'reconstruct' });
    const rs = await Promise.all(exps.map((e) => call(open, '/v1/reconstruct', { explanations: [e], encoding: 'base64' })));
    rs.forEach((r, i) => {
      expect(r.status).toBe(200);
      expect(r.body.reconstructions[0]).toBe(b64(alone[i]));
    });
    const after = await call(open, '/metrics');
    const calls = metricValue(after.text, 'nla_ar_batch_size_count', { kind: 'reconstruct' }) - calls0;
    const items = metricValue(after.text, 'nla_ar_batch_size_sum', { kind: 'reconstruct' }) - items0;
    expect(items).toBe(32);
    expect(calls).toBeLessThan(32);
    // some engine call carried more than one request
    expect(metricValue(after.text, 'nla_ar_batch_size_bucket', { kind: 'reconstruct', le: '1' }) - metricValue(before.text, 'nla_ar_batch_size_bucket', { kind: 'reconstruct', le: '1' })).toBeLessThan(32);
    expect(metricValue(after.text, 'nla_ar_queue_wait_seconds_count') - metricValue(before.text, 'nla_ar_queue_wait_seconds_count')).toBe(32);
  });
});

describe('API key (NLA_AR_API_KEY)', () => {
  const body = { explanations: ['a'] };
  test('/v1 routes need `Authorization: Bearer <key>`; wrong, missing or malformed is 401 with WWW-Authenticate', async () => {
    for (const headers of [{} as Record<string, string>, { authorization: `Bearer ${KEY}x` }, { authorization: 'Bearer short' }, { authorization: KEY }, { authorization: `Basic ${KEY}` }, { authorization: 'Bearer ' }]) {
      const r = await call(authed, '/v1/reconstruct', body, { headers });
      expectError(r, 401, 'ERR_NLA_UNAUTHORIZED');
      expect(r.headers.get('www-authenticate')).toBe('Bearer');
    }
    // a percent-encoded or doubled-slash path that still routes to a /v1 route is guarded too
    for (const p of ['/%761/reconstruct', '/v1//reconstruct', '/v1/reconstruct/', '/v1/reconstruct?x=1']) expectError(await call(authed, p, body), 401, 'ERR_NLA_UNAUTHORIZED');
    // auth comes before the body is looked at
    expectError(await call(authed, '/v1/reconstruct', undefined, { raw: '{broken' }), 401, 'ERR_NLA_UNAUTHORIZED');
    expectError(await call(authed, '/v1/activation', { texts: ['a'] }), 401, 'ERR_NLA_UNAUTHORIZED');
    const ok = await call(authed, '/v1/reconstruct', body, { headers: { authorization: `Bearer ${KEY}` } });
    expect(ok.status).toBe(200);
    expect(Float32Array.from(ok.body.reconstructions[0])).toEqual(await ar.reconstruct('a'));
  });

  test('health, readiness, metrics and the OpenAPI document stay open', async () => {
    for (const p of ['/health', '/ready', '/metrics', '/openapi.json']) expect((await call(authed, p)).status).toBe(200);
  });
});

describe('verbalizer (--av)', () => {
  interface WireVerbalization {
    text: string;
    explanation: string;
    tokens: number;
    token_ids: number[];
    finish_reason: string;
  }
  const wire = (v: Verbalization): WireVerbalization => ({
    text: v.text,
    explanation: v.explanation,
    tokens: v.tokens.length,
    token_ids: Array.from(v.tokens),
    finish_reason: v.finishReason,
  });
  const avTexts = ['The harbour was grey and the gulls were loud.', 'def f(x): return x * 2', 'Rain on a tin roof all night.', 'Chapter 3: the tax forms'];
  let acts: Float32Array[];
  const sampled = { max_tokens: 16, temperature: 1, top_k: 40, top_p: 0.95, seed: 5 };
  const sampledOpts = { maxTokens: 16, temperature: 1, topK: 40, topP: 0.95, seed: 5 };

  beforeAll(async () => {
    acts = await nla.activation(avTexts);
  });

  test('/health says av: true; /openapi.json documents /v1/verbalize with the sampling options and the response fields', async () => {
    expect((await call(avs, '/health')).body).toMatchObject({ status: 'ok', ar: true, av: true, d_model: d });
    const doc = (await call(avs, '/openapi.json')).body;
    const op = doc.paths['/v1/verbalize'].post;
    const req = op.requestBody.content['application/json'].schema;
    expect(req.required).toEqual(['activations']);
    expect(req.additionalProperties).toBe(false);
    expect(Object.keys(req.properties).sort()).toEqual(['activations', 'max_tokens', 'seed', 'stop', 'temperature', 'top_k', 'top_p']);
    const item = op.responses['200'].content['application/json'].schema.properties.verbalizations.items;
    expect(Object.keys(item.properties).sort()).toEqual(['explanation', 'finish_reason', 'text', 'token_ids', 'tokens']);
    expect(item.properties.finish_reason.enum).toEqual(['eos', 'length', 'stop']);
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['200', '400', '413', '422', '501']));
    const rt = doc.paths['/v1/round-trip'].post.requestBody.content['application/json'].schema;
    for (const k of ['max_tokens', 'temperature', 'top_k', 'top_p', 'seed', 'stop']) expect(rt.properties[k]).toBeDefined();
  });

  test('POST /v1/verbalize, greedy: float and base64 activations give the in-process Verbalizer\'s tokens exactly; default max_tokens is 120', async () => {
    const want = await nla.verbalize(acts, { maxTokens: 16 });
    const r = await call(avs, '/v1/verbalize', { activations: acts.map((a, i) => (i % 2 ? b64(a) : Array.from(a))), max_tokens: 16 });
    expect(r.status).toBe(200);
    expect(r.body.verbalizations).toEqual(want.map(wire));
    // seed, top_k and top_p do not matter to greedy decoding
    const g2 = await call(avs, '/v1/verbalize', { activations: acts.map(b64), max_tokens: 16, temperature: 0, seed: 77, top_k: 3, top_p: 0.5 });
    expect(g2.body.verbalizations).toEqual(want.map(wire));
    const stop = await call(avs, '/v1/verbalize', { activations: [b64(acts[0])], max_tokens: 16, stop: '>>>' });
    expect(stop.body.verbalizations).toEqual([wire(await nla.verbalize(acts[0], { maxTokens: 16, stop: ['>>>'] }))]);
    const dflt = await call(avs, '/v1/verbalize', { activations: [b64(acts[1])] });
    const w = await nla.verbalize(acts[1]);
    expect(dflt.body.verbalizations).toEqual([wire(w)]);
    expect(w.tokens.length + (w.finishReason === 'eos' ? 1 : 0)).toBeLessThanOrEqual(120);
  });

  test('sampling: a fixed seed reproduces and equals the in-process Verbalizer (item i samples with seed + i), also when the request is split over engine calls or sent concurrently with the same seed', async () => {
    const want = await nla.verbalize(acts, sampledOpts);
    // the samples are not all alike (greedy decoding of the synthetic model is one repeated token)
    expect(new Set(want.map((v) => v.text)).size).toBeGreaterThan(1);
    const body = { activations: acts.map(b64), ...sampled };
    // 4 items at 154 + 16 tokens each, 400 per engine call: the request is split in two calls
    const [a, b, c] = await Promise.all([call(avs, '/v1/verbalize', body), call(avs, '/v1/verbalize', body), call(avs, '/v1/verbalize', { ...body, activations: body.activations.slice(0, 2) })]);
    for (const r of [a, b]) {
      expect(r.status).toBe(200);
      expect(r.body.verbalizations).toEqual(want.map(wire));
    }
    expect(c.body.verbalizations).toEqual(want.slice(0, 2).map(wire));
    // item 1 of the seed-5 request is what item 0 gets with seed 6
    const alone = await call(avs, '/v1/verbalize', { activations: [body.activations[1]], ...sampled, seed: 6 });
    expect(alone.body.verbalizations[0]).toEqual(wire(want[1]));
    const other = await call(avs, '/v1/verbalize', { ...body, seed: 1234 });
    expect(other.body.verbalizations).toEqual((await nla.verbalize(acts, { ...sampledOpts, seed: 1234 })).map(wire));
    expect(other.body.verbalizations).not.toEqual(want.map(wire));
  });

  test('bad input: unusable vectors and an all-zero activation are 422, bad options 400, too many items or too many tokens 413; the server stays healthy', async () => {
    const withNaN = Float32Array.from(acts[0]);
    withNaN[1] = NaN;
    const zeros = new Float32Array(d);
    const m0 = (await call(avs, '/metrics')).text;
    const cases: [unknown, RegExp][] = [
      [{ activations: [Array.from(acts[0]).slice(1)] }, new RegExp(`${d - 1} values, expected d_model = ${d}`)],
      [{ activations: [b64(withNaN)] }, /activations\[0\]\[1\] is not finite/],
      [{ activations: ['not*base64!'] }, /not valid base64/],
      [{ activations: [b64(acts[0]), Array.from(zeros)] }, /activations\[1\] is all zeros: it has no direction to inject/],
      [{ activations: [b64(zeros)], temperature: 1, seed: 3 }, /activations\[0\] is all zeros/],
    ];
    for (const [body, msg] of cases) expectError(await call(avs, '/v1/verbalize', body), 422, 'ERR_NLA_INVALID_ARG', msg);
    expectError(await call(avs, '/v1/round-trip', { activations: [b64(zeros)] }), 422, 'ERR_NLA_INVALID_ARG', /all zeros/);
    const act = b64(acts[0]);
    for (const extra of [{ temperature: -1 }, { top_p: 0 }, { top_p: 1.5 }, { top_k: -1 }, { seed: -1 }, { seed: 1.5 }, { seed: 2 ** 32 }, { max_tokens: 0 }, { max_tokens: 4097 }, { stop: [] }, { stop: [''] }, { max_new_tokens: 5 }, { temperature: '1' }])
      expectError(await call(avs, '/v1/verbalize', { activations: [act], ...extra }), 400, 'ERR_NLA_INVALID_ARG');
    expectError(await call(avs, '/v1/verbalize', { activations: [] }), 400, 'ERR_NLA_INVALID_ARG');
    expectError(await call(avs, '/v1/verbalize', { activations: Array(5).fill(act) }), 413, 'ERR_NLA_PAYLOAD_TOO_LARGE', /5 activations in one request; the limit is 4/);
    const promptTokens = nla.verbalizer.info.promptTokens;
    expectError(await call(avs, '/v1/verbalize', { activations: [act], max_tokens: 400 - promptTokens + 1 }), 413, 'ERR_NLA_CONTEXT_OVERFLOW', new RegExp(`AV prompt \\(${promptTokens} tokens\\) plus max_tokens ${400 - promptTokens + 1} is 401 tokens; the limit per item is 400`));
    expectError(await call(avs, '/v1/round-trip', { texts: ['a'], max_tokens: 300 }), 413, 'ERR_NLA_CONTEXT_OVERFLOW');
    const ok = await call(avs, '/v1/verbalize', { activations: [act], max_tokens: 400 - promptTokens });
    expect(ok.status).toBe(200);
    expect((await call(avs, '/health')).status).toBe(200);
    const m1 = (await call(avs, '/metrics')).text;
    const errors = (code: string) => metricValue(m1, 'nla_ar_errors_total', { route: '/v1/verbalize', code }) - metricValue(m0, 'nla_ar_errors_total', { route: '/v1/verbalize', code });
    expect(errors('ERR_NLA_INVALID_ARG')).toBe(cases.length + 14);
    expect(errors('ERR_NLA_PAYLOAD_TOO_LARGE')).toBe(1);
    expect(errors('ERR_NLA_CONTEXT_OVERFLOW')).toBe(1);
  });

  test('POST /v1/round-trip without explanations: from texts and from activations, the numbers equal Autoencoder.roundTrip with the same settings', async () => {
    const expectSame = (x: Record<string, unknown>, w: AutoencoderRoundTrip, computed: boolean, enc: 'float' | 'base64') => {
      const vec = (v: unknown) => (enc === 'base64' ? fromB64(v as string) : Float32Array.from(v as number[]));
      expect(x.text).toBe(w.text);
      expect(x.explanation).toBe(w.explanation);
      expect(x.finish_reason).toBe(w.finishReason);
      expect(vec(x.reconstruction)).toEqual(w.reconstruction);
      expect(x.cosine).toBe(w.cosine);
      expect(x.mse).toBe(w.mse);
      if (computed) expect(vec(x.activation)).toEqual(w.activation);
      else expect(x.activation).toBeUndefined();
    };
    const fromTexts = await nla.roundTrip(avTexts.slice(0, 3), sampledOpts);
    const t = await call(avs, '/v1/round-trip', { texts: avTexts.slice(0, 3), ...sampled, encoding: 'base64' });
    expect(t.status).toBe(200);
    t.body.results.forEach((x: Record<string, unknown>, i: number) => expectSame(x, fromTexts[i], true, 'base64'));
    // the AR got the AV's raw text
    expect(fromTexts[0].reconstruction).toEqual(await ar.reconstruct(fromTexts[0].text));
    const fromActs = await nla.roundTrip(acts.map((a) => ({ activation: a })), { maxTokens: 12 });
    const a = await call(avs, '/v1/round-trip', { activations: acts.map((v, i) => (i % 2 ? b64(v) : Array.from(v))), max_tokens: 12 });
    expect(a.status).toBe(200);
    a.body.results.forEach((x: Record<string, unknown>, i: number) => expectSame(x, fromActs[i], false, 'float'));
    // given explanations still skip the AV on this server
    const g = await call(avs, '/v1/round-trip', { activations: [b64(acts[0])], explanations: [explanations[0]] });
    expect(g.body.results[0].text).toBeUndefined();
    expect(g.body.results[0].explanation).toBe(explanations[0]);
    expect(Float32Array.from(g.body.results[0].reconstruction)).toEqual(await ar.reconstruct(explanations[0]));
  });

  test('batching: concurrent greedy requests share engine calls, each answer equal to its request alone; /metrics counts verbalize requests, calls and generated tokens', async () => {
    const want = await nla.verbalize(acts, { maxTokens: 16 });
    const m0 = (await call(avs, '/metrics')).text;
    const rs = await Promise.all([0, 1, 2, 3, 0, 1, 2, 3].map((i) => call(avs, '/v1/verbalize', { activations: [b64(acts[i])], max_tokens: 16 })));
    rs.forEach((r, k) => {
      expect(r.status).toBe(200);
      expect(r.body.verbalizations).toEqual([wire(want[k % 4])]);
    });
    const m1 = (await call(avs, '/metrics')).text;
    const delta = (name: string, labels: Record<string, string> = {}) => metricValue(m1, name, labels) - metricValue(m0, name, labels);
    expect(delta('nla_ar_request_duration_seconds_count', { route: '/v1/verbalize', status: '200' })).toBe(8);
    expect(delta('nla_ar_batch_size_sum', { kind: 'verbalize' })).toBe(8);
    // each item costs the AV prompt + max_tokens; at most two of them fit the 400-token budget of one call
    expect(delta('nla_ar_batch_tokens_sum', { kind: 'verbalize' })).toBe(8 * (nla.verbalizer.info.promptTokens + 16));
    const calls = delta('nla_ar_batch_size_count', { kind: 'verbalize' });
    expect(calls).toBeLessThan(8);
    expect(calls).toBeGreaterThanOrEqual(4);
    expect(delta('nla_ar_generated_tokens_total')).toBe(rs.reduce((s, r) => s + r.body.verbalizations[0].tokens, 0));
  });
});
