/**
 * Scale-out of `nla-ar eval` on BullMQ over Redis. The coordinator (`eval --queue`) splits the rows into shards and
 * adds one job per shard; workers (`nla-ar worker`, one per device) take them, run the rows through the engine and
 * return the row results as the job's value; the coordinator writes them to --out as shards complete.
 *
 * - The queue is named by the model fingerprint, so a worker only ever sees shards meant for its files.
 * - A job's id is (data set hash, row range, config incl. model fingerprint): adding a shard twice is a no-op, a
 *   retried or re-run shard has one result, and the results file writes each row id once.
 * - A worker holds a lock on its job and renews it while it works (the engine runs off the JS thread); a worker
 *   that dies stops renewing, and after --lock-ms the stalled check moves the job back to wait for another worker.
 *   Failures are retried with exponential backoff.
 */
import * as crypto from 'node:crypto';
import { Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { Engine } from '../server/engine';
import { NlaError } from '../errors';
import type { ResultFile } from './output';
import type { Progress } from './progress';
import { evalRows, fromWire, toWire, type EvalConfig, type RowResult, type WireRow } from './rows';
import type { DatasetRow } from './dataset';


export interface ShardJob {
  datasetHash: string;
  shard: number;
  model: string;
  config: EvalConfig;
  rows: WireRow[];
}

export interface ShardResult {
  rows: RowResult[];
}

export function queueName(modelFingerprint: string): string {
  return `nla-ar-eval-${modelFingerprint.slice(0, 16)}`;
}

async function connect(url: string): Promise<Redis> {
  // BullMQ's blocking calls need maxRetriesPerRequest: null; a failed first connection is reported, not retried forever
  const redis = new Redis(url, { maxRetriesPerRequest: null, lazyConnect: true });
  redis.on('error', () => undefined); // reported through the commands that fail
  try {
    await redis.connect();
  } catch (e) {
    redis.disconnect();
    throw new NlaError('ERR_NLA_IO', `cannot connect to Redis at ${url}: ${(e as Error).message}`, { cause: e });
  }
  return redis;
}

function jobId(datasetHash: string, rows: DatasetRow[], model: string, config: EvalConfig): string {
  const cfg = crypto.createHash('sha256').update(JSON.stringify({ model, config })).digest('hex').slice(0, 16);
  return `${datasetHash.slice(0, 16)}-${rows[0].index}-${rows[rows.length - 1].index}-${cfg}`;
}

export interface CoordinatorOptions {
  url: string;
  model: string;
  datasetHash: string;
  config: EvalConfig;
  rows: DatasetRow[];
  shardSize: number;
  attempts: number;
  out: ResultFile;
  progress: Progress;
  /** Give up (error) after this long without finishing; undefined: wait for ever. */
  timeoutMs?: number;
  log: (s: string) => void;
}

/** Adds the shards not yet in --out and writes their rows as they finish. */
export async function coordinate(o: CoordinatorOptions): Promise<void> {
  const redis = await connect(o.url);
  const queue = new Queue<ShardJob, ShardResult>(queueName(o.model), { connection: redis });
  try {
    const shards: DatasetRow[][] = [];
    for (let i = 0; i < o.rows.length; i += o.shardSize) shards.push(o.rows.slice(i, i + o.shardSize));
    const pending = new Map<string, DatasetRow[]>();
    for (const s of shards) {
      const id = jobId(o.datasetHash, s, o.model, o.config);
      if (s.every((r) => o.out.done.has(r.id))) await queue.remove(id).catch(() => undefined); // collected before
      else pending.set(id, s);
    }
    if (pending.size === 0) return;
    // a shard that failed for good in an earlier run gets another go
    for (const id of pending.keys()) {
      const job = await Job.fromId<ShardJob, ShardResult>(queue, id);
      if (job && (await job.getState()) === 'failed') await job.retry('failed');
    }
    // in chunks, so that the serialised rows of a large data set are not all in memory at once
    const entries = [...pending];
    for (let i = 0; i < entries.length; i += 64)
      await queue.addBulk(
        entries.slice(i, i + 64).map(([id, s]) => ({
          name: 'shard',
          data: { datasetHash: o.datasetHash, shard: Math.floor(s[0].index / o.shardSize), model: o.model, config: o.config, rows: s.map(toWire) },
          opts: { jobId: id, attempts: o.attempts, backoff: { type: 'exponential' as const, delay: 1000 }, removeOnComplete: false, removeOnFail: false },
        })),
      );
    o.log(`${pending.size} shards of up to ${o.shardSize} rows on queue ${queueName(o.model)}; start workers with the same model files (nla-ar worker --queue ...)`);
    const t0 = Date.now();
    let lastWorkers = -1;
    while (pending.size > 0) {
      const ids = [...pending.keys()];
      const states = await Promise.all(ids.map((id) => queue.getJobState(id)));
      for (let k = 0; k < ids.length; k++) {
        const id = ids[k];
        if (states[k] === 'completed') {
          const job = await Job.fromId<ShardJob, ShardResult>(queue, id);
          const rows = job?.returnvalue?.rows;
          if (!rows) throw new NlaError('ERR_NLA_INTERNAL', `shard ${id} completed without results`);
          const fresh = o.out.append(rows);
          pending.delete(id);
          o.progress.add(fresh.length);
          await queue.remove(id).catch(() => undefined);
        } else if (states[k] === 'failed') {
          const job = await Job.fromId<ShardJob, ShardResult>(queue, id);
          throw new NlaError('ERR_NLA_INTERNAL', `shard ${id} failed after ${job?.attemptsMade ?? '?'} attempts: ${job?.failedReason ?? 'unknown reason'}`);
        } else if (states[k] === 'unknown') {
          throw new NlaError('ERR_NLA_INTERNAL', `shard ${id} disappeared from the queue (was it removed by hand?)`);
        }
      }
      if (pending.size === 0) break;
      const workers = await queue.getWorkersCount().catch(() => -1);
      if (workers !== lastWorkers) {
        lastWorkers = workers;
        o.progress.note(`${workers} worker${workers === 1 ? '' : 's'}`);
      }
      if (o.timeoutMs !== undefined && Date.now() - t0 > o.timeoutMs)
        throw new NlaError('ERR_NLA_ABORTED', `timed out with ${pending.size} shards unfinished (are workers running on queue ${queueName(o.model)}?)`);
      await new Promise((r) => setTimeout(r, Math.min(2000, 200 + pending.size * 2)));
    }
  } finally {
    await queue.close();
    redis.disconnect();
  }
}

export interface WorkerOptions {
  url: string;
  model: string;
  engine: Engine;
  /** Rows per engine call inside a shard. */
  batch: number;
  lockMs: number;
  log: (s: string) => void;
}

/** Runs shards until `stop` is called; resolves when the worker has closed (after finishing its current shard). */
export async function work(o: WorkerOptions): Promise<{ stop(): Promise<void>; closed: Promise<void> }> {
  const redis = await connect(o.url);
  const shardDelay = Number(process.env.NLA_AR_TEST_SHARD_DELAY_MS ?? 0); // test hook: keeps a shard in flight
  const worker = new Worker<ShardJob, ShardResult>(
    queueName(o.model),
    async (job) => {
      const data = job.data;
      if (data.model !== o.model) throw new UnrecoverableError(`shard for model ${data.model.slice(0, 16)}, this worker has ${o.model.slice(0, 16)}`);
      o.log(`shard ${data.shard} (${data.rows.length} rows, attempt ${job.attemptsMade + 1}): started`);
      if (shardDelay > 0) await new Promise((r) => setTimeout(r, shardDelay));
      const rows = data.rows.map(fromWire);
      const out: RowResult[] = [];
      for (let i = 0; i < rows.length; i += o.batch) out.push(...(await evalRows(o.engine, rows.slice(i, i + o.batch), data.config)));
      o.log(`shard ${data.shard}: done`);
      return { rows: out };
    },
    {
      connection: redis,
      concurrency: 1, // one shard at a time per device; batching happens inside the engine
      lockDuration: o.lockMs,
      stalledInterval: Math.max(500, Math.min(30_000, Math.floor(o.lockMs / 2))),
      maxStalledCount: 5,
      autorun: true,
    },
  );
  worker.on('failed', (job, err) => o.log(`shard ${job?.data.shard ?? '?'} failed: ${err.message}`));
  worker.on('error', (err) => o.log(`queue error: ${err.message}`));
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));
  let stopping: Promise<void> | null = null;
  return {
    closed,
    stop: () => {
      stopping ??= (async () => {
        await worker.close();
        redis.disconnect();
        resolveClosed();
      })();
      return stopping;
    },
  };
}
