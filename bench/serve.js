#!/usr/bin/env node
// The HTTP server under concurrent load: requests/s and p50 / p99 latency of single-item requests at concurrency
// 1, 8 and 32, with dynamic batching on (the defaults) and off (--max-batch-tokens 1: every engine call takes one
// item). Two routes: POST /v1/reconstruct (one explanation, the AR) and, with an AV folder, POST /v1/verbalize (one
// activation, greedy, --av-tokens new tokens). Run it on a quiet machine; numbers on a shared one are noise.
//
//   node bench/serve.js [--model M.gguf --ar DIR --layer L] [--av DIR | --no-av] [--av-tokens 16] [--threads N]
//                       [--seconds 5] [--levels 1,8,32] [--no-unbatched]
//
// Default: the shipped demo files (npm run build makes them), AV included. Each (route, mode, concurrency) is one
// warm-up second then `--seconds` of closed-loop clients, each sending its next request when the previous one is
// answered.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'lib', 'cli.js');

function args() {
  const a = {
    model: path.join(ROOT, 'demo', 'model.gguf'),
    ar: path.join(ROOT, 'demo', 'adapter'),
    av: path.join(ROOT, 'demo', 'av'),
    avTokens: 16,
    layer: undefined,
    threads: undefined,
    seconds: 5,
    levels: [1, 8, 32],
    unbatched: true,
  };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    if (v[i] === '--model') a.model = v[++i];
    else if (v[i] === '--ar') a.ar = v[++i];
    else if (v[i] === '--av') a.av = v[++i];
    else if (v[i] === '--no-av') a.av = null;
    else if (v[i] === '--av-tokens') a.avTokens = Number(v[++i]);
    else if (v[i] === '--layer') a.layer = v[++i];
    else if (v[i] === '--threads') a.threads = v[++i];
    else if (v[i] === '--seconds') a.seconds = Number(v[++i]);
    else if (v[i] === '--levels') a.levels = v[++i].split(',').map(Number);
    else if (v[i] === '--no-unbatched') a.unbatched = false;
    else throw new Error(`unknown argument ${v[i]}`);
  }
  if (a.av && !fs.existsSync(a.av)) throw new Error(`no AV folder ${a.av} (give --av DIR or --no-av)`);
  return a;
}

function startServer(a, extra) {
  const flags = ['serve', '--model', a.model, '--ar', a.ar, '--port', '0', '--max-queue', '4096', ...extra];
  if (a.layer !== undefined) flags.push('--layer', a.layer);
  if (a.threads !== undefined) flags.push('--threads', a.threads);
  const p = spawn(process.execPath, [CLI, ...flags], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  return new Promise((resolve, reject) => {
    p.stderr.on('data', (c) => {
      err += c;
      const m = /listening on (http:\/\/\S+);/.exec(err);
      if (m && /ready:/.test(err)) resolve({ url: m[1], proc: p });
    });
    p.on('exit', (code) => reject(new Error(`server exited ${code}:\n${err}`)));
  });
}

const EXPLANATIONS = [
  '<explanation>The text discusses the weather in a coastal town.</explanation>',
  '<explanation>A recipe step: stirring flour into melted butter.</explanation>',
  '<explanation>Python code defining a recursive function.</explanation>',
  '<explanation>A legal clause about liability and damages.</explanation>',
];

async function post(url, route, body) {
  const r = await fetch(`${url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = await r.json();
  if (r.status !== 200) throw new Error(`${route}: status ${r.status}: ${JSON.stringify(json)}`);
  return json;
}

/** One request of a route: returns its latency in ms and the tokens it generated. */
const ROUTES = {
  reconstruct: {
    server: () => [],
    prepare: async () => undefined,
    async one(url, _ctx, i) {
      const t0 = performance.now();
      await post(url, '/v1/reconstruct', { explanations: [EXPLANATIONS[i % EXPLANATIONS.length]], encoding: 'base64' });
      return { ms: performance.now() - t0, tokens: 0 };
    },
  },
  verbalize: {
    server: (a) => ['--av', a.av],
    // the base model's activations of the explanations' texts, from the server itself
    prepare: async (url) => (await post(url, '/v1/activation', { texts: EXPLANATIONS, encoding: 'base64' })).activations,
    async one(url, ctx, i, a) {
      const t0 = performance.now();
      const r = await post(url, '/v1/verbalize', { activations: [ctx[i % ctx.length]], max_tokens: a.avTokens });
      return { ms: performance.now() - t0, tokens: r.verbalizations[0].tokens };
    },
  },
};

async function level(route, url, ctx, a, concurrency) {
  const run = async (ms, record) => {
    const end = performance.now() + ms;
    let n = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async (_, c) => {
        while (performance.now() < end) record(await route.one(url, ctx, c + concurrency * n++, a));
      }),
    );
  };
  await run(1000, () => undefined);
  const lat = [];
  let tokens = 0;
  const t0 = performance.now();
  await run(a.seconds * 1000, (r) => {
    lat.push(r.ms);
    tokens += r.tokens;
  });
  const secs = (performance.now() - t0) / 1000;
  lat.sort((x, y) => x - y);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
  return { concurrency, requests: lat.length, rps: lat.length / secs, tps: tokens / secs, p50: q(0.5), p99: q(0.99) };
}

async function metricsSummary(url, kind) {
  const t = await (await fetch(`${url}/metrics`)).text();
  const get = (name) => Number((new RegExp(`^${name}\\{kind="${kind}"\\} (\\S+)$`, 'm').exec(t) || [])[1] || 0);
  return { calls: get('nla_ar_batch_size_count'), items: get('nla_ar_batch_size_sum') };
}

async function main() {
  const a = args();
  const modes = [['batched (defaults)', []]];
  if (a.unbatched) modes.push(['unbatched (--max-batch-tokens 1)', ['--max-batch-tokens', '1']]);
  const routes = a.av ? ['reconstruct', 'verbalize'] : ['reconstruct'];
  const rows = [];
  for (const name of routes) {
    const route = ROUTES[name];
    for (const [mode, extra] of modes) {
      const s = await startServer(a, [...route.server(a), ...extra]);
      try {
        const ctx = await route.prepare(s.url);
        for (const c of a.levels) {
          const before = await metricsSummary(s.url, name);
          const r = await level(route, s.url, ctx, a, c);
          const after = await metricsSummary(s.url, name);
          rows.push({ route: name, mode, ...r, meanBatch: (after.items - before.items) / Math.max(1, after.calls - before.calls) });
          process.stderr.write(`${name} ${mode} c=${c}: ${r.rps.toFixed(1)} req/s\n`);
        }
      } finally {
        s.proc.kill('SIGTERM');
        await new Promise((r) => s.proc.once('exit', r));
      }
    }
  }
  console.log(`model ${a.model}${a.av ? `, AV ${a.av} (greedy, ${a.avTokens} new tokens per request)` : ''}; load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}\n`);
  console.log('| route | mode | concurrency | requests | req/s | AV tokens/s | p50 ms | p99 ms | items per engine call |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows)
    console.log(
      `| ${r.route} | ${r.mode} | ${r.concurrency} | ${r.requests} | ${r.rps.toFixed(1)} | ${r.route === 'verbalize' ? r.tps.toFixed(0) : ''} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.meanBatch.toFixed(2)} |`,
    );
  console.log('');
  for (const name of routes) {
    const of = (m, c) => rows.find((r) => r.route === name && r.mode.startsWith(m) && r.concurrency === c);
    const lo = a.levels[0];
    const hi = a.levels[a.levels.length - 1];
    const base = of('batched', lo);
    const top = of('batched', hi);
    const unb = of('unbatched', hi);
    if (base && top) console.log(`${name}: throughput at concurrency ${hi} vs ${lo}: ${(top.rps / base.rps).toFixed(2)}x`);
    if (top && unb) console.log(`${name}: batched vs unbatched at concurrency ${hi}: ${(top.rps / unb.rps).toFixed(2)}x`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
