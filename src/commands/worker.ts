/**
 * `nla-ar worker`: takes `eval --queue` shards from BullMQ and runs them on this machine's engine. One per device;
 * SIGTERM / SIGINT finish the current shard, then exit 0.
 */
import { z } from 'zod';
import { Engine } from '../server/engine';
import { modelFingerprint } from '../eval/fingerprint';
import { deviceFlag, intFlag, loadQueue, parseFlags, runCommand, UsageError } from './common';

export const WORKER_USAGE = `nla-ar worker --queue redis://HOST:PORT/DB --model M.gguf --ar DIR [--av DIR] [--layer 17]
              [--batch 16] [--lock-ms 120000] [--device auto|cpu|cuda] [--threads N]
  Prints its model hash (the coordinator needs the same files, or --model-hash with this value).
  --lock-ms: how long a shard stays claimed without a sign of life; a dead worker's shard goes to another
  worker after that (the lock is renewed while the shard runs, so long shards are fine).`;

const flags = {
  queue: { type: 'string' },
  model: { type: 'string' },
  ar: { type: 'string' },
  av: { type: 'string' },
  layer: { type: 'string' },
  batch: { type: 'string' },
  'lock-ms': { type: 'string' },
  device: { type: 'string' },
  threads: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const Flags = z.strictObject({
  queue: z.string({ error: 'is required' }).regex(/^rediss?:\/\/[^\s]+$/, { error: 'must be a redis:// or rediss:// URL' }),
  model: z.string({ error: 'is required' }).min(1),
  ar: z.string({ error: 'is required' }).min(1),
  av: z.string().min(1).optional(),
  layer: intFlag(0, 4096).optional(),
  batch: intFlag(1, 4096).default(16),
  'lock-ms': intFlag(1000).default(120_000),
  device: deviceFlag,
  threads: intFlag(1, 1024).optional(),
  help: z.boolean().optional(),
});

const log = (s: string) => process.stderr.write(`nla-ar worker[${process.pid}]: ${s}\n`);

export async function main(argv: string[]): Promise<number> {
  return runCommand(WORKER_USAGE, async () => {
    if (argv.includes('--help') || argv.includes('-h')) {
      console.log(WORKER_USAGE);
      return 0;
    }
    const { values: f, positionals } = parseFlags(argv, flags, Flags);
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    const { queueName, work } = loadQueue();
    const engine = await Engine.load({ model: f.model, ar: f.ar, av: f.av, layer: f.layer, device: f.device, threads: f.threads });
    const model = modelFingerprint({ model: f.model, ar: f.ar, av: f.av, layer: f.layer });
    let w;
    try {
      w = await work({ url: f.queue, model, engine, batch: f.batch, lockMs: f['lock-ms'], log });
    } catch (e) {
      await engine.close();
      throw e;
    }
    log(`model hash ${model}; waiting for shards on ${queueName(model)} at ${f.queue.replace(/\/\/[^@/]*@/, '//***@')}`);
    const stop = (sig: string) => {
      log(`${sig}: finishing the current shard`);
      void w.stop();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    await w.closed;
    await engine.close();
    log('stopped');
    return 0;
  });
}
