/**
 * Shared plumbing of the serve / eval / worker commands: flags parsed with node:util parseArgs, then validated
 * with a zod schema (numbers come in as strings and are coerced), and one way of reporting errors.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { z } from 'zod';
import { NlaError } from '../errors';
import { ServiceError } from '../server/errors';

export class UsageError extends Error {}

/** A flag holding a whole number (strings from the command line). */
export const intFlag = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .regex(/^\d+$/, { error: 'must be a whole number' })
    .transform(Number)
    .pipe(z.int().min(min).max(max));

/** Parses argv with the given flags and validates the values with `schema`; failures are UsageErrors naming the flag. */
export function parseFlags<S extends z.ZodType>(
  argv: string[],
  options: NonNullable<ParseArgsConfig['options']>,
  schema: S,
): { values: z.output<S>; positionals: string[] } {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const r = schema.safeParse(parsed.values);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`);
    throw new UsageError(issues.join('\n'));
  }
  return { values: r.data, positionals: parsed.positionals };
}

/** Runs a command body and turns its failure into an exit code (1 error, 2 bad usage) and a message on stderr. */
export async function runCommand(usage: string, body: () => Promise<number | void>): Promise<number> {
  try {
    return (await body()) ?? 0;
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`${e.message}\n\n${usage}`);
      return 2;
    }
    if (e instanceof NlaError || e instanceof ServiceError) console.error(`nla-ar: ${e.code}: ${e.message}`);
    else console.error(`nla-ar: ${(e as Error)?.stack ?? String(e)}`);
    return 1;
  }
}

export const deviceFlag = z.enum(['auto', 'cpu', 'cuda']).default('auto');

export function packageVersion(): string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('../../package.json') as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

/**
 * The BullMQ scale-out (src/eval/queue.ts). bullmq and ioredis are optional peer dependencies, so that installing
 * nla-ar for the library or the server does not pull them in; without them `--queue` and `worker` say what to install.
 */
export function loadQueue(): typeof import('../eval/queue') {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('../eval/queue') as typeof import('../eval/queue');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'MODULE_NOT_FOUND' && /'(bullmq|ioredis)'/.test(err.message))
      throw new ServiceError('ERR_NLA_NOT_IMPLEMENTED', 'the queue (eval --queue, nla-ar worker) needs BullMQ and ioredis: npm install bullmq ioredis', { cause: e });
    throw e;
  }
}
