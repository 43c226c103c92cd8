/**
 * `nla-ar serve`: the AR (and, with --av, the AV) over HTTP with dynamic batching (src/server/).
 * It listens first, so /health answers 503 while the weights load; SIGTERM / SIGINT drain and exit 0.
 */
import { z } from 'zod';
import { Engine } from '../server/engine';
import { DEFAULT_SERVER_OPTIONS, NlaServer } from '../server/app';
import { deviceFlag, intFlag, packageVersion, parseFlags, runCommand, UsageError } from './common';

export const SERVE_USAGE = `nla-ar serve --model M.gguf --ar DIR [--av DIR] [--host 127.0.0.1] [--port 8080]
             [--api-key K | env NLA_AR_API_KEY] [--max-batch-tokens 8192] [--batch-window-ms 5] [--max-queue 512]
             [--max-body-bytes 16777216] [--max-items 256] [--max-item-tokens 4096] [--drain-timeout-ms 30000]
             [--layer 17] [--device auto|cpu|cuda] [--threads N]
  POST /v1/reconstruct /v1/activation /v1/verbalize /v1/round-trip; GET /health /ready /metrics /openapi.json`;

const flags = {
  model: { type: 'string' },
  ar: { type: 'string' },
  av: { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  'api-key': { type: 'string' },
  'max-batch-tokens': { type: 'string' },
  'batch-window-ms': { type: 'string' },
  'max-queue': { type: 'string' },
  'max-body-bytes': { type: 'string' },
  'max-items': { type: 'string' },
  'max-item-tokens': { type: 'string' },
  'drain-timeout-ms': { type: 'string' },
  layer: { type: 'string' },
  device: { type: 'string' },
  threads: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const Flags = z.strictObject({
  model: z.string({ error: 'is required' }).min(1),
  ar: z.string({ error: 'is required' }).min(1),
  av: z.string().min(1).optional(),
  host: z.string().min(1).default('127.0.0.1'),
  port: intFlag(0, 65535).default(8080),
  'api-key': z.string().min(1).optional(),
  'max-batch-tokens': intFlag(1).default(DEFAULT_SERVER_OPTIONS.maxBatchTokens),
  'batch-window-ms': intFlag(0, 10_000).default(DEFAULT_SERVER_OPTIONS.batchWindowMs),
  'max-queue': intFlag(1).default(DEFAULT_SERVER_OPTIONS.maxQueue),
  'max-body-bytes': intFlag(1024).default(DEFAULT_SERVER_OPTIONS.maxBodyBytes),
  'max-items': intFlag(1).default(DEFAULT_SERVER_OPTIONS.maxItems),
  'max-item-tokens': intFlag(1).default(DEFAULT_SERVER_OPTIONS.maxItemTokens),
  'drain-timeout-ms': intFlag(0).default(DEFAULT_SERVER_OPTIONS.drainTimeoutMs),
  layer: intFlag(0, 4096).optional(),
  device: deviceFlag,
  threads: intFlag(1, 1024).optional(),
  help: z.boolean().optional(),
});

const log = (s: string) => process.stderr.write(`nla-ar serve: ${s}\n`);

export async function main(argv: string[]): Promise<number> {
  return runCommand(SERVE_USAGE, async () => {
    if (argv.includes('--help') || argv.includes('-h')) {
      console.log(SERVE_USAGE);
      return 0;
    }
    const { values: f, positionals } = parseFlags(argv, flags, Flags);
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    const apiKey = f['api-key'] ?? (process.env.NLA_AR_API_KEY || undefined);
    const loopback = f.host === '127.0.0.1' || f.host === 'localhost' || f.host === '::1';
    if (!loopback && apiKey === undefined) log(`warning: listening on ${f.host} without an API key: anyone who can reach it can use it`);

    const server = new NlaServer({
      apiKey,
      maxBatchTokens: f['max-batch-tokens'],
      batchWindowMs: f['batch-window-ms'],
      maxQueue: f['max-queue'],
      maxBodyBytes: f['max-body-bytes'],
      maxItems: Math.min(f['max-items'], f['max-queue']), // a request larger than the queue could never be admitted: 413, not 429 for ever
      maxItemTokens: f['max-item-tokens'], // an item over the batch budget runs in a call of its own
      drainTimeoutMs: f['drain-timeout-ms'],
      version: packageVersion(),
    });

    let stopping = false;
    let loading: Promise<Engine> | null = null;
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      log(`${sig}: draining (new work is refused with 503)`);
      void (async () => {
        await server.shutdown();
        // a load still under way is waited for and closed, so the process exits cleanly
        if (loading) await loading.then((e) => e.close(), () => undefined);
        log('stopped');
        process.exit(0);
      })();
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));

    const addr = await server.listen(f.host, f.port);
    log(`listening on http://${addr.host.includes(':') ? `[${addr.host}]` : addr.host}:${addr.port}${apiKey ? ' (API key required on /v1)' : ''}; loading ${f.model}`);
    // test hook: holds the load so that tests can observe /health before the weights are in
    const delay = Number(process.env.NLA_AR_TEST_LOAD_DELAY_MS ?? 0);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    loading = Engine.load({ model: f.model, ar: f.ar, av: f.av, layer: f.layer, device: f.device, threads: f.threads });
    let engine: Engine;
    try {
      engine = await loading;
    } catch (e) {
      server.markFailed();
      await server.app.close();
      throw e;
    }
    loading = null;
    if (stopping) {
      await engine.close();
      return 0;
    }
    server.attach(engine);
    const i = engine.ar.info;
    log(`ready: ${i.backend} (${i.backendDescription}), d_model ${engine.d}, AR block ${i.layer}, AV ${engine.av ? `loaded (prompt ${engine.av.promptTokens} tokens)` : 'none'}`);
    for (const w of engine.av?.warnings ?? []) log(`warning: ${w}`);
    // keep running until a signal ends the process
    await new Promise<never>(() => undefined);
  });
}
