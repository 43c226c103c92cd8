/**
 * The HTTP server: fastify routes over one Engine and one Scheduler. It listens before the weights are loaded
 * (/health answers 503 until `attach`), validates every body with the zod schemas, answers every failure as
 * `{error: {code, message}}` with the status of its code, and drains on shutdown: queued and running work finishes
 * and is answered, new work is refused with 503, then the engine is closed.
 */
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import { NlaError } from '../errors';
import { cosine, directionMse } from '../metrics';
import { describeError, ServiceError, UnprocessableError, type AnyErrorCode } from './errors';
import { DEFAULT_AV_MAX_TOKENS, type Engine, type VerbalizeParams, type Verbalization } from './engine';
import { createMetrics, type ServerMetrics } from './metrics';
import { Scheduler } from './scheduler';
import { ActivationRequest, ReconstructRequest, RoundTripRequest, VerbalizeRequest, openApiDocument } from './schemas';
import { decodeVector, encodeVector } from './vectors';

export interface ServerOptions {
  /** Bearer key required on /v1 routes (none: open; the default host is loopback-only). */
  apiKey?: string;
  maxBatchTokens: number;
  batchWindowMs: number;
  /** Most items waiting for the engine. */
  maxQueue: number;
  maxBodyBytes: number;
  /** Most explanations / texts / activations in one request. */
  maxItems: number;
  /** Most prompt tokens of one item. */
  maxItemTokens: number;
  /** Longest a shutdown waits for queued and running work. */
  drainTimeoutMs: number;
  version: string;
}

export const DEFAULT_SERVER_OPTIONS: Omit<ServerOptions, 'version'> = {
  maxBatchTokens: 8192,
  batchWindowMs: 5,
  maxQueue: 512,
  maxBodyBytes: 16 << 20,
  maxItems: 256,
  maxItemTokens: 4096,
  drainTimeoutMs: 30_000,
};

type State = 'loading' | 'ok' | 'draining' | 'failed';

function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const r = schema.safeParse(body);
  if (!r.success) throw new NlaError('ERR_NLA_INVALID_ARG', `invalid request body:\n${z.prettifyError(r.error)}`);
  return r.data;
}

/** Constant-time key check; hashing first makes the comparison independent of the keys' lengths too. */
function keyMatches(given: string, expected: string): boolean {
  const a = crypto.createHash('sha256').update(given).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}

export class NlaServer {
  readonly app: FastifyInstance;
  readonly metrics: ServerMetrics;
  readonly scheduler: Scheduler;
  private readonly opts: ServerOptions;
  private engine: Engine | null = null;
  private state: State = 'loading';
  private inFlight = 0;
  private inFlightWaiters: (() => void)[] = [];
  private closing: Promise<void> | null = null;
  /** Numbers the sampled verbalize requests (each is a scheduler kind of its own). */
  private sampledRequests = 0;

  constructor(opts: ServerOptions) {
    this.opts = opts;
    this.metrics = createMetrics();
    this.scheduler = new Scheduler({ maxBatchTokens: opts.maxBatchTokens, batchWindowMs: opts.batchWindowMs, maxQueue: opts.maxQueue }, this.metrics);
    // return503OnClosing off: requests that arrive while closing get our own JSON 503 (the state is 'draining' by then)
    this.app = Fastify({ logger: false, bodyLimit: opts.maxBodyBytes, return503OnClosing: false, forceCloseConnections: 'idle' });
    this.routes();
  }

  /** The engine is loaded: /health turns 200 and /v1 routes start working. */
  attach(engine: Engine): void {
    this.engine = engine;
    if (this.state === 'loading') this.state = 'ok';
  }

  /** Loading failed: /health says so until the process exits. */
  markFailed(): void {
    this.state = 'failed';
  }

  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    await this.app.listen({ host, port });
    const a = this.app.server.address();
    if (a === null || typeof a === 'string') throw new Error('the server has no TCP address');
    return { host: a.address, port: a.port };
  }

  /** Drains (finishes queued and running work, refuses new work) then closes the server and the engine. Idempotent. */
  shutdown(): Promise<void> {
    this.closing ??= (async () => {
      this.state = 'draining';
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), this.opts.drainTimeoutMs)));
      const drained = (async () => {
        await this.scheduler.drain();
        await this.noneInFlight();
        return 'drained' as const;
      })();
      if ((await Promise.race([drained, timedOut])) === 'timeout') {
        this.scheduler.abortQueued(new ServiceError('ERR_NLA_NOT_READY', 'the server shut down before this request ran'));
        this.app.server.closeAllConnections();
      }
      clearTimeout(timer);
      await this.app.close();
      await this.engine?.close();
    })();
    return this.closing;
  }

  // ------------------------------------------------------------------ plumbing

  private noneInFlight(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((r) => this.inFlightWaiters.push(r));
  }

  private sendError(req: FastifyRequest, reply: FastifyReply, e: unknown): FastifyReply {
    let d = describeError(e);
    const fe = e as { code?: string; statusCode?: number; message?: string };
    if (!(e instanceof NlaError) && !(e instanceof ServiceError) && typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
      // fastify's own errors: body too large, malformed JSON, wrong content type, bad content-length
      const code: AnyErrorCode = fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'ERR_NLA_PAYLOAD_TOO_LARGE' : 'ERR_NLA_INVALID_ARG';
      const message = fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? `the request body is over the limit of ${this.opts.maxBodyBytes} bytes` : String(fe.message);
      d = { code, message, status: fe.statusCode };
    }
    if (d.retryAfter !== undefined) reply.header('Retry-After', String(d.retryAfter));
    if (this.state === 'draining') reply.header('Connection', 'close');
    this.metrics.errors.inc({ route: req.routeOptions?.url ?? 'unmatched', code: d.code });
    return reply.code(d.status).type('application/json').send({ error: { code: d.code, message: d.message } });
  }

  private ready(): Engine {
    if (this.state === 'draining') throw new ServiceError('ERR_NLA_NOT_READY', 'the server is shutting down', { retryAfter: 1 });
    if (!this.engine || this.state !== 'ok') throw new ServiceError('ERR_NLA_NOT_READY', 'the model is still loading', { retryAfter: 1 });
    return this.engine;
  }

  private checkItems(n: number, what: string): void {
    if (n > this.opts.maxItems) throw new ServiceError('ERR_NLA_PAYLOAD_TOO_LARGE', `${n} ${what} in one request; the limit is ${this.opts.maxItems}`);
  }

  /** Prompt tokens of one item, refused (413) over the per-item limit; very long strings are refused before tokenizing. */
  private tokensOf(count: (s: string) => number, s: string, what: string): number {
    const limit = this.opts.maxItemTokens;
    // no token is longer than 64 characters in practice; this keeps a huge string from blocking the event loop
    if (s.length > limit * 64) throw new NlaError('ERR_NLA_CONTEXT_OVERFLOW', `${what} is ${s.length} characters long; items are limited to ${limit} tokens`);
    const n = count(s);
    if (n > limit) throw new NlaError('ERR_NLA_CONTEXT_OVERFLOW', `${what} is ${n} tokens long; the limit per item is ${limit}`);
    return n;
  }

  private checkLayer(engine: Engine, layer: number | undefined): number {
    const l = layer ?? engine.defaultActivationLayer;
    if (l >= engine.nLayer) throw new UnprocessableError(`layer ${l} does not exist: the model has ${engine.nLayer} blocks (0..${engine.nLayer - 1})`);
    return l;
  }

  private reconstructAll(engine: Engine, explanations: string[], signal: AbortSignal): Promise<{ vectors: Float32Array[]; tokens: number[] }> {
    const tokens = explanations.map((e, i) => this.tokensOf((s) => engine.explanationTokens(s), e, `explanations[${i}]`));
    return this.scheduler
      .submit('reconstruct', (xs: string[]) => engine.reconstruct(xs), explanations, tokens, signal)
      .then((vectors) => ({ vectors, tokens }));
  }

  private activationsAll(engine: Engine, texts: string[], layer: number, signal: AbortSignal): Promise<{ vectors: Float32Array[]; tokens: number[] }> {
    const tokens = texts.map((t, i) => this.tokensOf((s) => engine.textTokens(s), t, `texts[${i}]`));
    return this.scheduler
      .submit(`activation:${layer}`, (xs: string[]) => engine.activations(xs, layer), texts, tokens, signal)
      .then((vectors) => ({ vectors, tokens }));
  }

  /**
   * The AV over a request's activations through the scheduler. An item's cost is the AV prompt plus max_tokens:
   * what it holds in the KV cache at the end (the prompt prefix is computed once per call, but every item keeps
   * its own copy of the sequence), and an item over --max-item-tokens is refused before any work.
   *
   * Greedy decoding ignores seed / top_k / top_p and an item's tokens do not depend on its batch, so greedy requests
   * with the same length limit and stop strings share engine calls. A sampled item's tokens depend on its seed,
   * and item i of an engine call samples with seed + i: a sampled request is therefore never merged with another
   * (its own kind), and a part of it that the token budget puts in a later call is run with seed + its first index,
   * so that the answer equals the Verbalizer's on the whole request.
   */
  private async verbalizeAll(engine: Engine, activations: Float32Array[], p: VerbalizeParams, signal: AbortSignal): Promise<Verbalization[]> {
    const { cost, maxTokens } = this.avCost(engine, p);
    activations.forEach((a, i) => {
      if (a.every((x) => x === 0)) throw new UnprocessableError(`activations[${i}] is all zeros: it has no direction to inject`);
    });
    const sampled = (p.temperature ?? 0) > 0;
    const stop = p.stop?.length ? { stop: p.stop } : {};
    const greedy: VerbalizeParams = { maxTokens, ...stop };
    const kind = sampled ? `verbalize:sampled:${++this.sampledRequests}` : `verbalize:greedy:${JSON.stringify(greedy)}`;
    const run = async (xs: { a: Float32Array; index: number }[]): Promise<Verbalization[]> => {
      if (!sampled) return engine.verbalize(xs.map((x) => x.a), greedy);
      const out: Verbalization[] = [];
      for (let i = 0; i < xs.length; ) {
        let j = i + 1;
        while (j < xs.length && xs[j].index === xs[j - 1].index + 1) j++;
        out.push(...(await engine.verbalize(xs.slice(i, j).map((x) => x.a), { ...p, maxTokens, seed: (p.seed ?? 0) + xs[i].index })));
        i = j;
      }
      return out;
    };
    const vs = await this.scheduler.submit(kind, run, activations.map((a, index) => ({ a, index })), activations.map(() => cost), signal);
    this.metrics.generatedTokens.inc(vs.reduce((s, v) => s + v.tokenIds.length, 0));
    return vs;
  }

  /** An AV item's token cost (501 without an AV, 413 over the per-item limit), checked before any engine work. */
  private avCost(engine: Engine, p: VerbalizeParams): { cost: number; maxTokens: number } {
    const av = engine.av;
    if (!av) throw new ServiceError('ERR_NLA_NOT_IMPLEMENTED', 'no verbalizer (AV) in this server (start it with --av DIR): /v1/verbalize and AV round trips are unavailable');
    const maxTokens = p.maxTokens ?? DEFAULT_AV_MAX_TOKENS;
    const cost = av.promptTokens + maxTokens;
    if (cost > this.opts.maxItemTokens)
      throw new NlaError('ERR_NLA_CONTEXT_OVERFLOW', `the AV prompt (${av.promptTokens} tokens) plus max_tokens ${maxTokens} is ${cost} tokens; the limit per item is ${this.opts.maxItemTokens}`);
    return { cost, maxTokens };
  }

  private routes(): void {
    const app = this.app;
    const signalFor = (reply: FastifyReply): AbortSignal => {
      const c = new AbortController();
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) c.abort();
      });
      return c.signal;
    };

    app.addHook('onRequest', async (req, reply) => {
      this.inFlight++;
      this.metrics.inFlight.inc();
      reply.raw.once('close', () => {
        this.inFlight--;
        this.metrics.inFlight.dec();
        if (this.inFlight === 0) for (const w of this.inFlightWaiters.splice(0)) w();
      });
      // by the matched route, not the raw URL: an encoded or oddly spelled path that routes to /v1 is still guarded
      const route = req.routeOptions?.url;
      if (!(route?.startsWith('/v1/') || req.url.startsWith('/v1/'))) return;
      if (this.opts.apiKey !== undefined) {
        const h = req.headers.authorization;
        const m = typeof h === 'string' ? /^Bearer (.+)$/.exec(h) : null;
        if (!m || !keyMatches(m[1], this.opts.apiKey)) {
          reply.header('WWW-Authenticate', 'Bearer');
          throw new ServiceError('ERR_NLA_UNAUTHORIZED', m ? 'wrong API key' : 'this server needs `Authorization: Bearer <API key>`');
        }
      }
      this.ready(); // 503 before the body is even read
    });
    app.addHook('onResponse', async (req, reply) => {
      this.metrics.requestDuration.observe({ route: req.routeOptions?.url ?? 'unmatched', status: String(reply.statusCode) }, reply.elapsedTime / 1000);
    });
    app.setErrorHandler((err, req, reply) => this.sendError(req, reply, err));
    app.setNotFoundHandler((req, reply) => this.sendError(req, reply, new ServiceError('ERR_NLA_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`)));

    app.get('/health', async (_req, reply) => {
      const e = this.engine;
      const ok = this.state === 'ok' && e !== null;
      return reply.code(ok ? 200 : 503).send({
        status: this.state,
        ar: e !== null,
        av: e?.av != null,
        ...(e ? { d_model: e.d, model: path.basename(e.ar.info.model.path) } : {}),
      });
    });
    app.get('/ready', async (_req, reply) => {
      const ready = this.state === 'ok' && this.scheduler.depth < this.opts.maxQueue;
      return reply.code(ready ? 200 : 503).send({ ready, status: this.state, queue: this.scheduler.depth });
    });
    app.get('/metrics', async (_req, reply) => reply.type(this.metrics.registry.contentType).send(await this.metrics.registry.metrics()));
    app.get('/openapi.json', async () => openApiDocument(this.opts.version));

    app.post('/v1/reconstruct', async (req, reply) => {
      const engine = this.ready();
      const b = parseBody(ReconstructRequest, req.body);
      this.checkItems(b.explanations.length, 'explanations');
      const { vectors, tokens } = await this.reconstructAll(engine, b.explanations, signalFor(reply));
      return { reconstructions: vectors.map((v) => encodeVector(v, b.encoding)), tokens };
    });

    app.post('/v1/activation', async (req, reply) => {
      const engine = this.ready();
      const b = parseBody(ActivationRequest, req.body);
      this.checkItems(b.texts.length, 'texts');
      const layer = this.checkLayer(engine, b.layer);
      const { vectors, tokens } = await this.activationsAll(engine, b.texts, layer, signalFor(reply));
      return { activations: vectors.map((v) => encodeVector(v, b.encoding)), layer, tokens };
    });

    app.post('/v1/verbalize', async (req, reply) => {
      const engine = this.ready();
      if (!engine.av) throw new ServiceError('ERR_NLA_NOT_IMPLEMENTED', 'no verbalizer (AV) in this server: start it with --av DIR');
      const b = parseBody(VerbalizeRequest, req.body);
      this.checkItems(b.activations.length, 'activations');
      const acts = b.activations.map((a, i) => decodeVector(a, engine.d, `activations[${i}]`));
      const out = await this.verbalizeAll(engine, acts, samplingOf(b), signalFor(reply));
      return {
        verbalizations: out.map((v) => ({ text: v.text, explanation: v.explanation, tokens: v.tokenIds.length, token_ids: v.tokenIds, finish_reason: v.finishReason })),
      };
    });

    app.post('/v1/round-trip', async (req, reply) => {
      const engine = this.ready();
      const b = parseBody(RoundTripRequest, req.body);
      if ((b.texts === undefined) === (b.activations === undefined))
        throw new NlaError('ERR_NLA_INVALID_ARG', 'invalid request body: give exactly one of `texts` and `activations`');
      const n = (b.texts ?? b.activations)!.length;
      this.checkItems(n, b.texts ? 'texts' : 'activations');
      if (b.explanations && b.explanations.length !== n)
        throw new NlaError('ERR_NLA_INVALID_ARG', `invalid request body: ${b.explanations.length} explanations for ${n} originals`);
      if (!b.explanations && !engine.av)
        throw new ServiceError('ERR_NLA_NOT_IMPLEMENTED', 'a round trip without `explanations` needs the verbalizer (AV): start the server with --av DIR, or pass `explanations` to round-trip through the AR alone');
      const signal = signalFor(reply);
      // validate everything before any engine work
      if (b.explanations) b.explanations.forEach((e, i) => this.tokensOf((s) => engine.explanationTokens(s), e, `explanations[${i}]`));
      else this.avCost(engine, samplingOf(b));
      let originals: Float32Array[];
      let computed = false;
      if (b.activations) originals = b.activations.map((a, i) => decodeVector(a, engine.d, `activations[${i}]`));
      else {
        originals = (await this.activationsAll(engine, b.texts!, this.checkLayer(engine, b.layer), signal)).vectors;
        computed = true;
      }
      let arInputs: string[];
      let vs: Verbalization[] | undefined;
      if (b.explanations) arInputs = b.explanations;
      else {
        vs = await this.verbalizeAll(engine, originals, samplingOf(b), signal);
        arInputs = vs.map((v) => v.text); // the released scripts feed the raw AV text to the AR
      }
      const { vectors } = await this.reconstructAll(engine, arInputs, signal);
      return {
        results: vectors.map((r, i) => ({
          explanation: vs ? vs[i].explanation : arInputs[i],
          ...(vs ? { text: vs[i].text, finish_reason: vs[i].finishReason } : {}),
          ...(computed ? { activation: encodeVector(originals[i], b.encoding) } : {}),
          reconstruction: encodeVector(r, b.encoding),
          cosine: cosine(r, originals[i]),
          mse: directionMse(r, originals[i]),
        })),
      };
    });
  }
}

function samplingOf(b: { max_tokens?: number; temperature?: number; top_k?: number; top_p?: number; seed?: number; stop?: string | string[] }): VerbalizeParams {
  const p: VerbalizeParams = {};
  if (b.max_tokens !== undefined) p.maxTokens = b.max_tokens;
  if (b.temperature !== undefined) p.temperature = b.temperature;
  if (b.top_k !== undefined) p.topK = b.top_k;
  if (b.top_p !== undefined) p.topP = b.top_p;
  if (b.seed !== undefined) p.seed = b.seed;
  if (b.stop !== undefined) p.stop = typeof b.stop === 'string' ? [b.stop] : b.stop;
  return p;
}
