#!/usr/bin/env node
// The HTTP server under concurrent load: requests/s and p50 / p99 latency of single-explanation
// POST /v1/reconstruct requests at concurrency 1, 8 and 32, with dynamic batching on (the defaults) and off
// (--max-batch-tokens 1: every engine call takes one item). Run it on a quiet machine; numbers on a shared one
// are noise.
//
//   node bench/serve.js [--model M.gguf --ar DIR --layer L] [--threads N] [--seconds 5] [--levels 1,8,32] [--no-unbatched]
//
// Default: the shipped demo files (npm run build makes them). Each (mode, concurrency) is one warm-up second then
// `--seconds` of closed-loop clients, each sending its next request when the previous one is answered.
'use strict';
const path = require('node:path');
const { spawn } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'lib', 'cli.js');

function args() {
  const a = { model: path.join(ROOT, 'demo', 'model.gguf'), ar: path.join(ROOT, 'demo', 'adapter'), layer: undefined, threads: undefined, seconds: 5, levels: [1, 8, 32], unbatched: true };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    if (v[i] === '--model') a.model = v[++i];
    else if (v[i] === '--ar') a.ar = v[++i];
    else if (v[i] === '--layer') a.layer = v[++i];
    else if (v[i] === '--threads') a.threads = v[++i];
    else if (v[i] === '--seconds') a.seconds = Number(v[++i]);
    else if (v[i] === '--levels') a.levels = v[++i].split(',').map(Number);
    else if (v[i] === '--no-unbatched') a.unbatched = false;
    else throw new Error(`unknown argument ${v[i]}`);
  }
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

async function one(url, i) {
  const t0 = performance.now();
  const r = await fetch(`${url}/v1/reconstruct`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ explanations: [EXPLANATIONS[i % EXPLANATIONS.length]], encoding: 'base64' }),
  });
  await r.arrayBuffer();
  if (r.status !== 200) throw new Error(`status ${r.status}`);
  return performance.now() - t0;
}

async function level(url, concurrency, seconds) {
  const run = async (ms, record) => {
    const end = performance.now() + ms;
    let n = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async (_, c) => {
        while (performance.now() < end) record(await one(url, c + concurrency * n++));
      }),
    );
  };
  await run(1000, () => undefined);
  const lat = [];
  const t0 = performance.now();
  await run(seconds * 1000, (ms) => lat.push(ms));
  const secs = (performance.now() - t0) / 1000;
  lat.sort((x, y) => x - y);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
  return { concurrency, requests: lat.length, rps: lat.length / secs, p50: q(0.5), p99: q(0.99) };
}

async function metricsSummary(url) {
  const t = await (await fetch(`${url}/metrics`)).text();
  const get = (name) => Number((new RegExp(`^${name}\\{kind="reconstruct"\\} (\\S+)$`, 'm').exec(t) || [])[1] || 0);
  return { calls: get('nla_ar_batch_size_count'), items: get('nla_ar_batch_size_sum') };
}

async function main() {
  const a = args();
  const modes = [['batched (defaults)', []]];
  if (a.unbatched) modes.push(['unbatched (--max-batch-tokens 1)', ['--max-batch-tokens', '1']]);
  const rows = [];
  for (const [name, extra] of modes) {
    const s = await startServer(a, extra);
    try {
      for (const c of a.levels) {
        const before = await metricsSummary(s.url);
        const r = await level(s.url, c, a.seconds);
        const after = await metricsSummary(s.url);
        rows.push({ mode: name, ...r, meanBatch: (after.items - before.items) / Math.max(1, after.calls - before.calls) });
        process.stderr.write(`${name} c=${c}: ${r.rps.toFixed(1)} req/s\n`);
      }
    } finally {
      s.proc.kill('SIGTERM');
      await new Promise((r) => s.proc.once('exit', r));
    }
  }
  console.log(`model ${a.model}\n`);
  console.log('| mode | concurrency | requests | req/s | p50 ms | p99 ms | items per engine call |');
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const r of rows)
    console.log(`| ${r.mode} | ${r.concurrency} | ${r.requests} | ${r.rps.toFixed(1)} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.meanBatch.toFixed(2)} |`);
  const base = rows.find((r) => r.mode.startsWith('batched') && r.concurrency === a.levels[0]);
  const top = rows.find((r) => r.mode.startsWith('batched') && r.concurrency === a.levels[a.levels.length - 1]);
  const unb = rows.find((r) => r.mode.startsWith('unbatched') && r.concurrency === a.levels[a.levels.length - 1]);
  if (base && top) console.log(`\nthroughput at concurrency ${top.concurrency} vs ${base.concurrency}: ${(top.rps / base.rps).toFixed(2)}x`);
  if (top && unb) console.log(`batched vs unbatched at concurrency ${top.concurrency}: ${(top.rps / unb.rps).toFixed(2)}x`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
