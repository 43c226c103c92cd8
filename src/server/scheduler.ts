/**
 * Dynamic batching: one scheduler per engine (device). Requests put their items (one per explanation / text /
 * activation) in one bounded FIFO queue; the scheduler runs one engine call at a time, made of the items of the
 * oldest kind that fit in the token budget. An item that arrives while the engine is idle waits at most the batch
 * window for company; items that queued while the engine was busy go into the next call at once.
 *
 * A request's numbers never depend on what it was batched with (the engine computes every prompt on its own rows),
 * and when a merged call fails, each request in it is re-run alone so that one request's bad input cannot fail
 * another's.
 */
import { NlaError } from '../errors';
import { ServiceError } from './errors';
import type { ServerMetrics } from './metrics';

export interface SchedulerOptions {
  /** Most tokens in one engine call (at least one item always goes). */
  maxBatchTokens: number;
  /** How long an item that found the engine idle waits for others. */
  batchWindowMs: number;
  /** Most items waiting (not counting the call in progress); more is 429. */
  maxQueue: number;
}

/** Runs one engine call for a kind: inputs in, one output per input, in order. */
export type Runner<I, O> = (inputs: I[]) => Promise<O[]>;

interface Request<I, O> {
  kind: string;
  run: Runner<I, O>;
  inputs: I[];
  tokens: number[];
  outputs: O[];
  left: number;
  enqueued: number;
  failed: boolean;
  signal?: AbortSignal;
  resolve(v: O[]): void;
  reject(e: unknown): void;
}

interface Item {
  req: Request<unknown, unknown>;
  index: number;
}

export class Scheduler {
  private readonly opts: SchedulerOptions;
  private readonly metrics?: ServerMetrics;
  private queue: Item[] = [];
  private busy = false;
  private timer: NodeJS.Timeout | null = null;
  private draining = false;
  private idleWaiters: (() => void)[] = [];
  /** Running mean of seconds per engine call, for Retry-After. */
  private meanBatchSeconds = 0.05;
  private batchesRun = 0;

  constructor(opts: SchedulerOptions, metrics?: ServerMetrics) {
    this.opts = opts;
    this.metrics = metrics;
  }

  get depth(): number {
    return this.queue.length;
  }

  get idle(): boolean {
    return !this.busy && this.queue.length === 0;
  }

  get batches(): number {
    return this.batchesRun;
  }

  /** Seconds until a full queue has likely gone down (for Retry-After). */
  retryAfterSeconds(): number {
    const calls = Math.ceil(this.queue.length / 8) + 1;
    return Math.max(1, Math.ceil(calls * this.meanBatchSeconds));
  }

  /** Queues a request's items; resolves with one output per input. Throws 429 / 503 without queueing anything. */
  submit<I, O>(kind: string, run: Runner<I, O>, inputs: I[], tokens: number[], signal?: AbortSignal): Promise<O[]> {
    if (this.draining) return Promise.reject(new ServiceError('ERR_NLA_NOT_READY', 'the server is shutting down', { retryAfter: 1 }));
    if (inputs.length === 0) return Promise.resolve([]);
    if (this.queue.length + inputs.length > this.opts.maxQueue)
      return Promise.reject(
        new ServiceError('ERR_NLA_OVERLOADED', `the queue is full (${this.queue.length} of ${this.opts.maxQueue} items waiting); retry later`, {
          retryAfter: this.retryAfterSeconds(),
        }),
      );
    return new Promise<O[]>((resolve, reject) => {
      const req: Request<I, O> = { kind, run, inputs, tokens, outputs: new Array(inputs.length), left: inputs.length, enqueued: performance.now(), failed: false, signal, resolve, reject };
      for (let i = 0; i < inputs.length; i++) this.queue.push({ req: req as unknown as Request<unknown, unknown>, index: i });
      this.metrics?.queueDepth.set(this.queue.length);
      this.kick();
    });
  }

  /** Stops taking new work; resolves when everything queued or running has finished. */
  drain(): Promise<void> {
    this.draining = true;
    if (this.idle) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Rejects everything still queued (used when a drain runs out of time). */
  abortQueued(reason: ServiceError): void {
    const items = this.queue;
    this.queue = [];
    for (const it of items) this.fail(it.req, reason);
    this.metrics?.queueDepth.set(0);
    this.settleIdle();
  }

  private kick(): void {
    if (this.busy || this.timer || this.queue.length === 0) return;
    const queuedTokens = this.queue.reduce((s, it) => s + it.req.tokens[it.index], 0);
    const waited = performance.now() - this.queue[0].req.enqueued;
    const wait = queuedTokens >= this.opts.maxBatchTokens ? 0 : Math.max(0, this.opts.batchWindowMs - waited);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.runSafely();
    }, wait);
  }

  /** A bug in the scheduler fails the requests it held, never the process. */
  private runSafely(): void {
    this.runBatch().catch((e) => {
      this.busy = false;
      this.abortQueued(e instanceof ServiceError ? e : new ServiceError('ERR_NLA_NOT_READY', `internal scheduler error: ${(e as Error)?.message ?? e}`));
    });
  }

  private take(): Item[] {
    // drop the items of requests that already failed or whose caller went away
    for (const it of this.queue) if (it.req.signal?.aborted) this.fail(it.req, new NlaError('ERR_NLA_ABORTED', 'the request was cancelled'));
    this.queue = this.queue.filter((it) => !it.req.failed);
    if (this.queue.length === 0) return [];
    const kind = this.queue[0].req.kind;
    const batch: Item[] = [];
    const rest: Item[] = [];
    let tokens = 0;
    for (const it of this.queue) {
      const t = it.req.tokens[it.index];
      if (it.req.kind === kind && (batch.length === 0 || tokens + t <= this.opts.maxBatchTokens)) {
        batch.push(it);
        tokens += t;
      } else rest.push(it);
    }
    this.queue = rest;
    this.metrics?.batchTokens.observe({ kind: kind.split(':')[0] }, tokens);
    return batch;
  }

  private async runBatch(): Promise<void> {
    const batch = this.take();
    this.metrics?.queueDepth.set(this.queue.length);
    if (batch.length === 0) return this.settleIdle();
    this.busy = true;
    const now = performance.now();
    const kindLabel = batch[0].req.kind.split(':')[0];
    for (const it of batch) this.metrics?.queueWait.observe((now - it.req.enqueued) / 1000);
    this.metrics?.batchSize.observe({ kind: kindLabel }, batch.length);
    const requests = new Set(batch.map((it) => it.req));
    const t0 = performance.now();
    try {
      const outputs = await batch[0].req.run(batch.map((it) => it.req.inputs[it.index]));
      batch.forEach((it, k) => this.deliver(it, outputs[k]));
    } catch (e) {
      if (requests.size === 1) {
        for (const req of requests) this.fail(req, e);
      } else {
        // isolate: each request of the failed call alone, so only the one at fault fails
        for (const req of requests) {
          const mine = batch.filter((it) => it.req === req);
          try {
            const outputs = await req.run(mine.map((it) => req.inputs[it.index]));
            mine.forEach((it, k) => this.deliver(it, outputs[k]));
          } catch (e2) {
            this.fail(req, e2);
          }
        }
      }
    } finally {
      const s = (performance.now() - t0) / 1000;
      this.batchesRun++;
      this.meanBatchSeconds += (s - this.meanBatchSeconds) / Math.min(this.batchesRun, 20);
      this.busy = false;
    }
    if (this.queue.length > 0) {
      // what queued meanwhile has waited already: run it now
      this.timer = setTimeout(() => {
        this.timer = null;
        this.runSafely();
      }, 0);
    } else this.settleIdle();
  }

  private deliver(it: Item, out: unknown): void {
    const req = it.req;
    if (req.failed) return;
    req.outputs[it.index] = out;
    if (--req.left === 0) req.resolve(req.outputs);
  }

  private fail(req: Request<unknown, unknown>, e: unknown): void {
    if (req.failed) return;
    req.failed = true;
    req.reject(e);
  }

  private settleIdle(): void {
    if (!this.idle) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const r of w) r();
  }
}
