/**
 * `nla-ar eval --queue` over a real Redis (its own redis-server on a free loopback port, own temp dir, shut down
 * afterwards) with three `nla-ar worker` processes, one of them killed with SIGKILL in the middle of a shard: the
 * dead worker's shard must be recovered by another worker (stalled-job recovery after --lock-ms), and the results
 * must hold every row exactly once with the same numbers as a single-process run, line for line. Then a sampled
 * round-trip run (the verbalizer) through a worker started with --av, against a single-process run.
 *
 * The victim holds its shard with the NLA_AR_TEST_SHARD_DELAY_MS hook, so that the kill lands mid-shard for sure.
 * redis-server comes from Debian (scripts/ci-redis.sh installs it in CI); without it the test is skipped locally
 * and fails in CI.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureLib } from './helpers/build';
import { demoFiles } from './helpers/demo';
import { REDIS_SERVER, spawnCli, startRedis, stopProc, type Proc, type RedisInstance } from './helpers/serve';

const files = demoFiles();
const d = files.config.nEmbd;
const modelFlags = ['--model', files.model, '--ar', files.adapter, '--layer', String(files.layer), '--device', 'cpu', '--threads', '1'];

if (!REDIS_SERVER && process.env.CI) throw new Error('redis-server is not installed: .ci/run must run scripts/ci-redis.sh');
if (!REDIS_SERVER) console.warn('eval-queue.test: redis-server is not installed (run scripts/ci-redis.sh): skipped');
const maybe = REDIS_SERVER ? describe : describe.skip;

maybe('eval over BullMQ with three workers, one killed mid-shard', () => {
  let tmp: string;
  let redis: RedisInstance;
  let data: string;
  const workers: Proc[] = [];
  const N = 240;

  beforeAll(async () => {
    ensureLib();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nla-queue-'));
    // deterministic pseudo-random originals; a few rows carry text instead, so workers compute those
    let s = 12345;
    const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
    const lines: string[] = [];
    for (let i = 0; i < N; i++) {
      const row: Record<string, unknown> = { id: `q${i}`, explanation: `row ${i}: ${['sea', 'bread', 'code', 'rain'][i % 4]} ${i % 7}` };
      if (i % 40 === 7) row.text = `text row ${i}`;
      else row.activation_vector = Array.from(Float32Array.from({ length: d }, rnd));
      lines.push(JSON.stringify(row));
    }
    data = path.join(tmp, 'data.jsonl');
    fs.writeFileSync(data, lines.join('\n') + '\n');
    redis = await startRedis();
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => stopProc(w, 10_000)));
    await redis?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('every row exactly once, equal to the single-process run', async () => {
    const evalFlags = [...modelFlags, '--data', data, '--mode', 'controls', '--activation-layer', String(files.config.nLayer - 1)];
    const single = spawnCli(['eval', ...evalFlags, '--out', path.join(tmp, 'single.jsonl')]);

    const worker = (env: Record<string, string> = {}) => {
      const w = spawnCli(['worker', '--queue', redis.url, ...modelFlags, '--lock-ms', '2000', '--batch', '8'], env);
      workers.push(w);
      return w;
    };
    const victim = worker({ NLA_AR_TEST_SHARD_DELAY_MS: '60000' });
    const hash = (await victim.waitFor(/model hash ([0-9a-f]{64})/))[1];
    const coord = spawnCli(['eval', ...evalFlags, '--out', path.join(tmp, 'dist.jsonl'), '--queue', redis.url, '--shard-size', '20', '--timeout-s', '240']);
    const shard = (await victim.waitFor(/shard (\d+) \(20 rows, attempt 1\): started/))[1];
    victim.kill('SIGKILL');
    expect(await victim.exited).toBe('SIGKILL');
    const others = [worker(), worker()];
    for (const w of others) expect((await w.waitFor(/model hash ([0-9a-f]{64})/))[1]).toBe(hash);

    const [codeCoord, codeSingle] = await Promise.all([coord.exited, single.exited]);
    if (codeCoord !== 0) throw new Error(`coordinator exited ${codeCoord}\n${coord.err()}\n${others.map((w) => w.err()).join('\n')}`);
    if (codeSingle !== 0) throw new Error(single.err());

    const dist = fs.readFileSync(path.join(tmp, 'dist.jsonl'), 'utf8').split('\n').filter(Boolean);
    const ref = fs.readFileSync(path.join(tmp, 'single.jsonl'), 'utf8').split('\n').filter(Boolean);
    const ids = dist.map((l) => (JSON.parse(l) as { id: string }).id);
    expect(ids.length).toBe(N);
    expect(new Set(ids).size).toBe(N);
    expect([...dist].sort()).toEqual([...ref].sort());
    expect(dist.filter((l) => /"error"/.test(l))).toEqual([]);
    // the killed worker's shard was done by another one
    const log = others.map((w) => w.err()).join('\n');
    expect(log).toMatch(new RegExp(`shard ${shard} \\(20 rows, attempt \\d\\): started[\\s\\S]*shard ${shard}: done`));
    // the summaries agree too
    const sum = (f: string) => JSON.parse(fs.readFileSync(path.join(tmp, `${f}.jsonl.summary.json`), 'utf8')).summary;
    expect(sum('dist')).toEqual(sum('single'));
    expect(coord.err()).toMatch(/12 shards of up to 20 rows on queue nla-ar-eval-[0-9a-f]{16}/);

    // run again with the same --out: nothing to do, nothing queued
    const again = spawnCli(['eval', ...evalFlags, '--out', path.join(tmp, 'dist.jsonl'), '--queue', redis.url, '--timeout-s', '30']);
    expect(await again.exited).toBe(0);
    expect(again.err()).toMatch(/0 to do/);

    // workers stop cleanly on SIGTERM
    for (const w of others) expect(await stopProc(w)).toBe(0);
  }, 300_000);

  test('round-trip mode (the AV) through a worker with --av: the same lines as a single-process run', async () => {
    const rtData = path.join(tmp, 'rt.jsonl');
    fs.writeFileSync(rtData, fs.readFileSync(data, 'utf8').split('\n').slice(0, 12).join('\n') + '\n');
    const evalFlags = [...modelFlags, '--av', files.av, '--data', rtData, '--mode', 'round-trip', '--max-tokens', '8', '--temperature', '1', '--seed', '3', '--activation-layer', String(files.config.nLayer - 1)];
    const single = spawnCli(['eval', ...evalFlags, '--out', path.join(tmp, 'rt-single.jsonl')]);
    const w = spawnCli(['worker', '--queue', redis.url, ...modelFlags, '--av', files.av, '--batch', '2']);
    workers.push(w);
    await w.waitFor(/model hash ([0-9a-f]{64})/);
    const coord = spawnCli(['eval', ...evalFlags, '--out', path.join(tmp, 'rt-dist.jsonl'), '--queue', redis.url, '--shard-size', '5', '--timeout-s', '120']);
    const [codeCoord, codeSingle] = await Promise.all([coord.exited, single.exited]);
    if (codeCoord !== 0) throw new Error(`coordinator exited ${codeCoord}\n${coord.err()}\n${w.err()}`);
    if (codeSingle !== 0) throw new Error(single.err());
    const dist = fs.readFileSync(path.join(tmp, 'rt-dist.jsonl'), 'utf8').split('\n').filter(Boolean);
    const ref = fs.readFileSync(path.join(tmp, 'rt-single.jsonl'), 'utf8').split('\n').filter(Boolean);
    expect(dist.length).toBe(12);
    expect([...dist].sort()).toEqual([...ref].sort());
    expect(dist.filter((l) => /"error"/.test(l))).toEqual([]);
    expect(dist.every((l) => typeof (JSON.parse(l) as { explanation?: unknown }).explanation === 'string')).toBe(true);
    expect(coord.err()).toMatch(/3 shards of up to 5 rows/);
    expect(await stopProc(w)).toBe(0);
  }, 120_000);
});
