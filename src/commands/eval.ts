/**
 * `nla-ar eval`: a data set in, one result line per row out (resumable), a summary at the end. Locally, or spread
 * over machines with `--queue redis://…` (src/eval/queue.ts) and `nla-ar worker` on each.
 */
import * as fs from 'node:fs';
import { z } from 'zod';
import { DEFAULT_ACTIVATION_LAYER } from '../options';
import { AV_NOT_AVAILABLE, Engine, VERBALIZER_AVAILABLE } from '../server/engine';
import { ServiceError } from '../server/errors';
import { readDataset, type DatasetRow } from '../eval/dataset';
import { modelFingerprint } from '../eval/fingerprint';
import { ResultFile, type ResultMeta } from '../eval/output';
import { Progress } from '../eval/progress';
import { evalRows, type EvalConfig } from '../eval/rows';
import { formatSummary, summarize } from '../eval/summary';
import { deviceFlag, intFlag, loadQueue, parseFlags, runCommand, UsageError } from './common';

export const EVAL_USAGE = `nla-ar eval --model M.gguf --ar DIR --data D.parquet|D.jsonl --out R.jsonl
            [--mode ar|controls|round-trip] [--av DIR [--max-tokens 120] [--temperature 0]]
            [--activation-column activation_vector] [--text-column text] [--explanation-column explanation] [--id-column id]
            [--activation-layer 23] [--layer 17] [--batch 16] [--limit N] [--seed 1] [--identity-rows 500]
            [--summary R.summary.json] [--json] [--device auto|cpu|cuda] [--threads N]
            [--queue redis://HOST:PORT/DB [--shard-size 50] [--attempts 5] [--model-hash H] [--timeout-s S]]
  modes: ar          reconstruct each row's explanation and compare with its activation (given, or of its text)
         controls    ar + empty / gibberish baselines per row and cross-row identity in the summary
         round-trip  the verbalizer (AV) writes the explanation, then the AR (needs --av); row i samples
                     with --seed + i, so a sampled run is reproducible and resumable
  --out gets one JSON line per row (keyed by id), written as rows finish; re-running with the same --out
  skips the rows already there. With --queue the rows are sharded onto a BullMQ queue for \`nla-ar worker\`s
  (--model-hash: the hash a worker prints, when this machine has no copy of the model files).`;

const flags = {
  model: { type: 'string' },
  ar: { type: 'string' },
  av: { type: 'string' },
  data: { type: 'string' },
  out: { type: 'string' },
  mode: { type: 'string' },
  'activation-column': { type: 'string' },
  'text-column': { type: 'string' },
  'explanation-column': { type: 'string' },
  'id-column': { type: 'string' },
  'activation-layer': { type: 'string' },
  layer: { type: 'string' },
  batch: { type: 'string' },
  limit: { type: 'string' },
  seed: { type: 'string' },
  'identity-rows': { type: 'string' },
  summary: { type: 'string' },
  json: { type: 'boolean' },
  device: { type: 'string' },
  threads: { type: 'string' },
  queue: { type: 'string' },
  'shard-size': { type: 'string' },
  attempts: { type: 'string' },
  'model-hash': { type: 'string' },
  'timeout-s': { type: 'string' },
  'max-tokens': { type: 'string' },
  temperature: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const redisUrl = z.string().regex(/^rediss?:\/\/[^\s]+$/, { error: 'must be a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379/0' });

const Flags = z.strictObject({
  model: z.string().min(1).optional(),
  ar: z.string().min(1).optional(),
  av: z.string().min(1).optional(),
  data: z.string({ error: 'is required' }).min(1),
  out: z.string({ error: 'is required' }).min(1),
  mode: z.enum(['ar', 'controls', 'round-trip']).default('ar'),
  'activation-column': z.string().min(1).optional(),
  'text-column': z.string().min(1).optional(),
  'explanation-column': z.string().min(1).optional(),
  'id-column': z.string().min(1).optional(),
  'activation-layer': intFlag(0, 4096).default(DEFAULT_ACTIVATION_LAYER),
  layer: intFlag(0, 4096).optional(),
  batch: intFlag(1, 4096).default(16),
  limit: intFlag(1).optional(),
  seed: intFlag(0, 2 ** 31).default(1),
  'identity-rows': intFlag(2, 100_000).default(500),
  summary: z.string().min(1).optional(),
  json: z.boolean().optional(),
  device: deviceFlag,
  threads: intFlag(1, 1024).optional(),
  queue: redisUrl.optional(),
  'shard-size': intFlag(1, 100_000).default(50),
  attempts: intFlag(1, 100).default(5),
  'model-hash': z.string().regex(/^[0-9a-f]{64}$/, { error: 'must be the 64-hex-digit hash a worker prints' }).optional(),
  'timeout-s': intFlag(1).optional(),
  'max-tokens': intFlag(1, 4096).optional(),
  temperature: z.string().regex(/^\d+(\.\d+)?$/).transform(Number).optional(),
  help: z.boolean().optional(),
});

const log = (s: string) => process.stderr.write(`nla-ar eval: ${s}\n`);

export async function main(argv: string[]): Promise<number> {
  return runCommand(EVAL_USAGE, async () => {
    if (argv.includes('--help') || argv.includes('-h')) {
      console.log(EVAL_USAGE);
      return 0;
    }
    const { values: f, positionals } = parseFlags(argv, flags, Flags);
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    const distributed = f.queue !== undefined;
    if (!distributed || !f['model-hash']) {
      if (!f.model) throw new UsageError('--model is required' + (distributed ? ' (or --model-hash)' : ''));
      if (!f.ar) throw new UsageError('--ar is required' + (distributed ? ' (or --model-hash)' : ''));
    }
    if (f.mode === 'round-trip') {
      if (!f.av) throw new UsageError('--mode round-trip needs the verbalizer: --av DIR');
      if (!VERBALIZER_AVAILABLE) throw new ServiceError('ERR_NLA_NOT_IMPLEMENTED', `--mode round-trip: ${AV_NOT_AVAILABLE}`);
    } else if (f.av) throw new UsageError(`--av is only used by --mode round-trip`);

    const data = await readDataset(f.data, { activation: f['activation-column'], text: f['text-column'], explanation: f['explanation-column'], id: f['id-column'] }, f.limit);
    const config: EvalConfig = {
      mode: f.mode,
      activationLayer: f['activation-layer'],
      seed: f.seed,
      sampling: { ...(f['max-tokens'] !== undefined ? { maxTokens: f['max-tokens'] } : {}), ...(f.temperature !== undefined ? { temperature: f.temperature } : {}) },
    };
    const model = f['model-hash'] ?? modelFingerprint({ model: f.model!, ar: f.ar!, av: f.av, layer: f.layer });
    const meta: ResultMeta = { format: 'nla-ar-eval/1', dataset: { path: f.data, hash: data.hash }, model, config: { ...config, columns: data.columns } };
    const out = ResultFile.open(f.out, meta);
    const originals = new Map<string, DatasetRow>(data.rows.map((r) => [r.id, r]));
    try {
      const todo = data.rows.filter((r) => !out.done.has(r.id));
      const already = data.rows.length - todo.length;
      log(`${data.rows.length} rows from ${f.data} (${data.format}; columns ${JSON.stringify(data.columns)}); mode ${f.mode}; ${todo.length} to do`);
      const progress = new Progress(data.rows.length, already);
      if (todo.length > 0) {
        if (distributed) {
          const { coordinate } = loadQueue(); // BullMQ and ioredis are not needed by a local run
          await coordinate({
            url: f.queue!,
            model,
            datasetHash: data.hash,
            config,
            rows: data.rows,
            shardSize: f['shard-size'],
            attempts: f.attempts,
            out,
            progress,
            timeoutMs: f['timeout-s'] !== undefined ? f['timeout-s'] * 1000 : undefined,
            log,
          });
        } else {
          const engine = await Engine.load({ model: f.model!, ar: f.ar!, av: f.av, layer: f.layer, device: f.device, threads: f.threads });
          try {
            for (let i = 0; i < todo.length; i += f.batch) {
              const fresh = out.append(await evalRows(engine, todo.slice(i, i + f.batch), config));
              progress.add(fresh.length);
            }
          } finally {
            await engine.close();
          }
        }
      }
      progress.finish();
    } finally {
      out.close();
    }
    const rows = [...out.done.values()].filter((r) => originals.has(r.id));
    const summary = summarize(rows, (r) => originals.get(r.id)?.activation, f['identity-rows']);
    const summaryPath = f.summary ?? `${f.out}.summary.json`;
    fs.writeFileSync(summaryPath, JSON.stringify({ dataset: meta.dataset, model, config: meta.config, summary }, null, 2) + '\n');
    if (f.json) console.log(JSON.stringify(summary));
    else console.log(formatSummary(summary));
    return 0;
  });
}
