/**
 * Lifetimes and load, through the public API only, each scenario in a child process (a crash fails one test; RSS
 * and descriptor counts are the child's own): many sequential calls with flat RSS and fds, many concurrent calls
 * on one and on several instances, close() with calls queued, abort storms, load/close loops, instances in worker
 * threads, process exit with calls in flight. `npm test` runs short versions (a few seconds each); `npm run soak`
 * (NLA_SOAK=1) the long ones, whose numbers are recorded in docs/reliability.md.
 */
import { demoFiles } from './helpers/demo';
import { LIB } from './helpers/build';
import { expectSurvived, runChild, type ChildResult } from './helpers/child';

const SOAK = process.env.NLA_SOAK === '1';
const files = demoFiles();
const J = JSON.stringify;
const LOAD = J({ model: files.model, adapter: files.adapter, layer: files.layer, device: 'cpu', threads: 1 });
const TEXT = 'tides';

/** Child-side helpers: RSS in MB and open descriptors, sampled after a GC when one is exposed. */
const PROBE = `
  const fdCount = () => fs.readdirSync('/proc/self/fd').length;
  const rssMb = () => { if (global.gc) global.gc(); return process.memoryUsage.rss() / 2 ** 20; };
  const same = (a, b) => a.length === b.length && a.every((x, i) => Object.is(x, b[i]));
`;
const GC = ['--expose-gc'];

function lines<T>(r: ChildResult): T[] {
  expectSurvived(r);
  return r.lines as T[];
}

/** Prints the measurements of a soak run (collected into docs/reliability.md). */
function report(name: string, m: unknown): void {
  if (SOAK) console.log(`soak ${name}: ${J(m)}`);
}

test(`${SOAK ? 10_000 : 300} sequential calls: identical results, flat RSS and descriptors`, async () => {
  const n = SOAK ? 10_000 : 300;
  const r = await runChild(
    `${PROBE}
    const ar = await nla.Reconstructor.load(${LOAD});
    const ref = Array.from(await ar.reconstruct(${J(TEXT)}));
    const warm = Math.max(20, Math.floor(${n} / 10));
    let differ = 0, rss0 = 0, fd0 = 0;
    const samples = [];
    const t0 = Date.now();
    for (let i = 0; i < ${n}; i++) {
      if (!same(Array.from(await ar.reconstruct(${J(TEXT)})), ref)) differ++;
      if (i + 1 === warm) { rss0 = rssMb(); fd0 = fdCount(); }
      if ((i + 1) % Math.floor(${n} / 10) === 0) samples.push(Math.round(rssMb()));
    }
    const ms = Date.now() - t0;
    emit({ differ, rss0, rss1: rssMb(), fd0, fd1: fdCount(), samples, msPerCall: ms / ${n} });
    await ar.close();`,
    { timeoutMs: SOAK ? 3_600_000 : 120_000, args: GC },
  );
  const [m] = lines<{ differ: number; rss0: number; rss1: number; fd0: number; fd1: number; samples: number[]; msPerCall: number }>(r);
  report('sequential', m);
  expect(m!.differ).toBe(0);
  expect(m!.fd1).toBe(m!.fd0);
  // a leak of even 1 KB per call would show as 10 MB over the soak's 10 000 calls
  expect(m!.rss1 - m!.rss0).toBeLessThan(SOAK ? 12 : 24);
});

test(`${SOAK ? 1000 : 150} concurrent calls on one instance and across 4 instances: all resolve, identical results`, async () => {
  const n = SOAK ? 1000 : 150;
  const r = await runChild(
    `${PROBE}
    const one = await nla.Reconstructor.load(${LOAD});
    const ref = Array.from(await one.reconstruct(${J(TEXT)}));
    let t = Date.now();
    const a = await Promise.all(Array.from({ length: ${n} }, () => one.reconstruct(${J(TEXT)})));
    const msOne = Date.now() - t;
    const many = await Promise.all(Array.from({ length: 4 }, () => nla.Reconstructor.load(${LOAD})));
    t = Date.now();
    const b = await Promise.all(Array.from({ length: ${n} }, (_, i) => many[i % 4].reconstruct(${J(TEXT)})));
    const msMany = Date.now() - t;
    // a batch call (one native job for many prompts) gives the same
    const batch = await one.reconstruct(Array.from({ length: 8 }, () => ${J(TEXT)}));
    emit({ one: a.filter((v) => !same(Array.from(v), ref)).length, many: b.filter((v) => !same(Array.from(v), ref)).length,
           batch: batch.filter((v) => !same(Array.from(v), ref)).length, count: a.length + b.length, msOne, msMany, rss: rssMb() });
    await Promise.all([one, ...many].map((x) => x.close()));`,
    { timeoutMs: SOAK ? 1_800_000 : 120_000, args: GC },
  );
  const [m] = lines<{ one: number; many: number; batch: number; count: number }>(r);
  report('concurrent', m);
  expect(m).toMatchObject({ one: 0, many: 0, batch: 0, count: 2 * n });
});

test('close() with calls queued: the queued calls complete, close() resolves after them, later calls reject ERR_NLA_CLOSED', async () => {
  const r = await runChild(
    `const ar = await nla.Reconstructor.load(${LOAD});
    const order = [];
    const calls = Array.from({ length: 30 }, (_, i) => ar.reconstruct(${J(TEXT)}).then(() => { order.push('call'); return 'ok'; }, (e) => e.code));
    let callsBeforeClosed = -1;
    const closing = ar.close().then(() => { callsBeforeClosed = order.length; });
    const after = await catchCode(() => ar.reconstruct(${J(TEXT)}));
    const codes = await Promise.all(calls);
    await closing;
    // the last call's own continuation may run after close() resolves; its native work may not
    emit({ codes: [...new Set(codes)], closedAfterTheWork: callsBeforeClosed >= 29, after,
           again: await catchCode(() => ar.close()), tokenize: await catchCode(() => ar.tokenize('x')) });`,
    { timeoutMs: 120_000 },
  );
  expect(lines(r)).toEqual([{ codes: ['ok'], closedAfterTheWork: true, after: 'ERR_NLA_CLOSED', again: 'ok', tokenize: 'ERR_NLA_CLOSED' }]);
});

test(`abort storm (${SOAK ? 5000 : 200} calls, half aborted at random times): only ok or ERR_NLA_ABORTED, the instance still works, flat RSS/fds`, async () => {
  const n = SOAK ? 5000 : 200;
  const r = await runChild(
    `${PROBE}
    const ar = await nla.Reconstructor.load(${LOAD});
    const ref = Array.from(await ar.reconstruct(${J(TEXT)}));
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const storm = async (count) => {
      const calls = [];
      for (let i = 0; i < count; i++) {
        const c = new AbortController();
        if (rnd() < 0.5) setTimeout(() => c.abort(new Error('storm')), Math.floor(rnd() * 40));
        if (rnd() < 0.05) c.abort(); // already aborted
        calls.push(ar.reconstruct(${J(TEXT)}, { signal: c.signal }).then((v) => (same(Array.from(v), ref) ? 'ok' : 'WRONG'), (e) => e.code));
      }
      return Promise.all(calls);
    };
    await storm(50);
    const rss0 = rssMb(), fd0 = fdCount();
    const codes = await storm(${n});
    const counts = {};
    for (const c of codes) counts[c] = (counts[c] || 0) + 1;
    emit({ counts, after: Array.from(await ar.reconstruct(${J(TEXT)})).every((x, i) => Object.is(x, ref[i])), rss0, rss1: rssMb(), fd0, fd1: fdCount() });
    await ar.close();`,
    { timeoutMs: SOAK ? 1_800_000 : 120_000, args: GC },
  );
  const [m] = lines<{ counts: Record<string, number>; after: boolean; rss0: number; rss1: number; fd0: number; fd1: number }>(r);
  report('abort-storm', m);
  expect(Object.keys(m!.counts).sort()).toEqual(['ERR_NLA_ABORTED', 'ok']);
  expect(m!.counts.ok! + m!.counts.ERR_NLA_ABORTED!).toBe(n);
  expect(m!.after).toBe(true);
  expect(m!.fd1).toBe(m!.fd0);
  expect(m!.rss1 - m!.rss0).toBeLessThan(24);
});

test(`load/close loop (${SOAK ? 300 : 15} cycles): descriptors return to the baseline, RSS stays flat`, async () => {
  const n = SOAK ? 300 : 15;
  const r = await runChild(
    `${PROBE}
    const cycle = async () => { const ar = await nla.Reconstructor.load(${LOAD}); await ar.reconstruct(${J(TEXT)}); await ar.close(); };
    await cycle(); await cycle();
    const rss0 = rssMb(), fd0 = fdCount();
    const t = Date.now();
    for (let i = 0; i < ${n}; i++) await cycle();
    // a second instance open while another closes
    const a = await nla.Reconstructor.load(${LOAD});
    const b = await nla.Reconstructor.load(${LOAD});
    await Promise.all([a.close(), b.reconstruct(${J(TEXT)})]);
    await b.close();
    emit({ rss0, rss1: rssMb(), fd0, fd1: fdCount(), msPerCycle: (Date.now() - t) / ${n} });`,
    { timeoutMs: SOAK ? 1_800_000 : 120_000, args: GC },
  );
  const [m] = lines<{ rss0: number; rss1: number; fd0: number; fd1: number }>(r);
  report('load-close', m);
  expect(m!.fd1).toBe(m!.fd0);
  expect(m!.rss1 - m!.rss0).toBeLessThan(SOAK ? 40 : 24);
});

test('instances in worker threads: each worker loads its own and gets the main thread\'s results; workers exit cleanly', async () => {
  const calls = SOAK ? 200 : 10;
  const r = await runChild(
    `const { Worker } = require('node:worker_threads');
    const main = await nla.Reconstructor.load(${LOAD});
    const ref = Array.from(await main.reconstruct(${J(TEXT)}));
    const code = \`
      const { parentPort } = require('node:worker_threads');
      const nla = require(${J(LIB)});
      (async () => {
        const ar = await nla.Reconstructor.load(${LOAD});
        const out = [];
        for (let i = 0; i < ${calls}; i++) out.push(Array.from(await ar.reconstruct(${J(TEXT)})));
        await ar.close();
        parentPort.postMessage(out);
      })();\`;
    const results = await Promise.all(Array.from({ length: 3 }, () => new Promise((resolve, reject) => {
      const w = new Worker(code, { eval: true });
      let got = null;
      w.on('message', (m) => (got = m));
      w.on('error', reject);
      w.on('exit', (c) => resolve({ exit: c, same: got !== null && got.every((v) => v.length === ref.length && v.every((x, i) => Object.is(x, ref[i]))) }));
    })));
    emit({ results, main: Array.from(await main.reconstruct(${J(TEXT)})).every((x, i) => Object.is(x, ref[i])) });
    await main.close();`,
    { timeoutMs: SOAK ? 1_800_000 : 120_000 },
  );
  expect(lines(r)).toEqual([{ results: [{ exit: 0, same: true }, { exit: 0, same: true }, { exit: 0, same: true }], main: true }]);
});

test('process exit with calls in flight (process.exit, and a natural exit without close()): exit code 0, no crash', async () => {
  const hard = await runChild(
    `const ar = await nla.Reconstructor.load(${LOAD});
    for (let i = 0; i < 20; i++) ar.reconstruct(${J(TEXT)}).catch(() => {});
    setTimeout(() => { emit({ exiting: true }); process.exit(0); }, 15);`,
    { timeoutMs: 60_000 },
  );
  expect(lines(hard)).toEqual([{ exiting: true }]);
  const natural = await runChild(
    `const ar = await nla.Reconstructor.load(${LOAD});
    let done = 0;
    for (let i = 0; i < 10; i++) ar.reconstruct(${J(TEXT)}).then(() => { if (++done === 10) emit({ done }); });`,
    { timeoutMs: 60_000 },
  );
  expect(lines(natural)).toEqual([{ done: 10 }]);
});
