#!/usr/bin/env node
// `npm run bench`: nla-ar's CPU engine vs llama.cpp on the same full-size E2B-shaped synthetic model, same
// prompts, same thread count. Writes the table (with machine, date, commit and command) to docs/benchmarks.md.
//
//   node bench/run.js [--threads 2] [--models q4_k_m,q8_0] [--repeat 5] [--rounds 2] [--no-write]
//   node bench/run.js --profile [--threads 2]     per-op profile of a 64- and a 256-token reconstruct and of AV
//                                                 generation for 1 and 16 activations (q4_k_m)
//
// Every measurement is a fresh process (cold load = open + adapter in a new process, page cache warm).
// Each round runs nla-ar then llama.cpp back to back; the table takes the median over rounds of each
// side's median over repetitions. Ratios are llama.cpp time / nla-ar time (> 1: nla-ar is faster).
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync, spawnSync } = require('node:child_process');
const { ROOT, CACHE, LLAMA_REF, ensureModels, log } = require('./models');

const LAYER = 17;
const LENGTHS = [16, 64, 256];
const BATCH = 16;
const BATCH_LEN = 64;
const AV_STEPS = 120;
const AV_BATCH = 16;

function args() {
  const a = { threads: 2, models: ['q4_k_m', 'q8_0'], repeat: 5, rounds: 2, write: true, profile: false };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    if (v[i] === '--threads') a.threads = Number(v[++i]);
    else if (v[i] === '--models') a.models = v[++i].split(',');
    else if (v[i] === '--repeat') a.repeat = Number(v[++i]);
    else if (v[i] === '--rounds') a.rounds = Number(v[++i]);
    else if (v[i] === '--no-write') a.write = false;
    else if (v[i] === '--profile') a.profile = true;
    else throw new Error(`unknown argument ${v[i]}`);
  }
  return a;
}

// The prompts nla_bench builds (BOS, then an LCG over ordinary tokens of the 4096-token synthetic vocab).
function prompt(n, seed, vocab = 4096) {
  const out = [2];
  let s = seed >>> 0;
  for (let i = 1; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push(300 + (s % (vocab - 300)));
  }
  return out;
}

const median = (v) => {
  const s = [...v].sort((x, y) => x - y);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
};

// Builds bench/nla_bench.cc with the engine sources (every .cc under native/ but native/addon/) compiled here under
// .cache/bench/obj — the same flags as CMakeLists.txt's nla_core (-O3, C++17, no -march: the SIMD kernels
// pick themselves at run time) — so the benchmark never depends on the state of build/.
function nlaBench() {
  const cxx = process.env.CXX || 'g++';
  const nativeDir = path.join(ROOT, 'native');
  const objDir = path.join(CACHE, 'obj');
  fs.mkdirSync(objDir, { recursive: true });
  // every file under native/ except the Node binding (native/addon/), as CMakeLists.txt's nla_core
  const files = fs.readdirSync(nativeDir, { recursive: true }).map((f) => path.join(nativeDir, f))
    .filter((f) => !f.startsWith(path.join(nativeDir, 'addon') + path.sep));
  const headers = files.filter((f) => /\.(h|inc)$/.test(f));
  const newestHeader = Math.max(...headers.map((f) => fs.statSync(f).mtimeMs));
  const srcs = files.filter((f) => f.endsWith('.cc'));
  const flags = ['-O3', '-std=c++17', '-pthread', `-I${nativeDir}`];
  const objs = [];
  const jobs = [];
  for (const src of srcs) {
    const obj = path.join(objDir, path.relative(nativeDir, src).replace(/[\\/]/g, '_').replace(/\.cc$/, '.o'));
    objs.push(obj);
    if (!fs.existsSync(obj) || fs.statSync(obj).mtimeMs < Math.max(fs.statSync(src).mtimeMs, newestHeader)) jobs.push([src, obj]);
  }
  if (jobs.length) {
    log(`compiling ${jobs.length} engine source(s) for the benchmark...`);
    // two at a time
    const { spawn } = require('node:child_process');
    const pending = [...jobs];
    const run = () => new Promise((resolve, reject) => {
      const next = () => {
        const j = pending.shift();
        if (!j) return resolve();
        const c = spawn(cxx, [...flags, '-c', j[0], '-o', j[1]], { stdio: 'inherit' });
        c.on('exit', (code) => (code === 0 ? next() : reject(new Error(`compiling ${j[0]} failed`))));
      };
      next();
    });
    return Promise.all([run(), run()]).then(() => link(cxx, flags, objs));
  }
  return Promise.resolve(link(cxx, flags, objs));
}

function link(cxx, flags, objs) {
  const src = path.join(__dirname, 'nla_bench.cc');
  const bin = path.join(CACHE, 'nla_bench');
  const newest = Math.max(fs.statSync(src).mtimeMs, ...objs.map((o) => fs.statSync(o).mtimeMs));
  if (!fs.existsSync(bin) || fs.statSync(bin).mtimeMs < newest) {
    log('linking nla_bench');
    execFileSync(cxx, [...flags, src, ...objs, '-o', bin], { stdio: 'inherit' });
  }
  return bin;
}

// Runs a command, returning its stdout and peak RSS (KiB) via GNU time when available.
function runMeasured(bin, argv) {
  const haveTime = fs.existsSync('/usr/bin/time');
  const rssFile = path.join(os.tmpdir(), `nla-bench-rss-${process.pid}`);
  const r = haveTime
    ? spawnSync('/usr/bin/time', ['-f', '%M', '-o', rssFile, bin, ...argv], { encoding: 'utf8', maxBuffer: 1 << 26 })
    : spawnSync(bin, argv, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${path.basename(bin)} failed (${r.status}): ${r.stderr}`);
  let rssKb = null;
  if (haveTime) {
    rssKb = Number(fs.readFileSync(rssFile, 'utf8').trim().split('\n').pop());
    fs.rmSync(rssFile, { force: true });
  }
  return { out: r.stdout, rssKb };
}

function runNla(bin, model, adapterDir, a, av) {
  const { out, rssKb } = runMeasured(bin, ['--model', model, '--adapter', adapterDir, '--layer', String(LAYER),
    '--threads', String(a.threads), '--lengths', LENGTHS.join(','), '--repeat', String(a.repeat), '--warmup', '1',
    '--batch', String(BATCH), '--batch-length', String(BATCH_LEN),
    ...(av ? ['--av', av.dir, '--av-template', av.templateFile, '--av-marker', av.marker.join(','), '--av-steps', String(AV_STEPS), '--av-batch', String(AV_BATCH)] : [])]);
  const j = JSON.parse(out);
  j.rss_kb = rssKb ?? j.peak_rss_kb;
  return j;
}

function runLlama(model, lora, tokens, { stop = true, repeat, threads, warmup = 1 }) {
  const argv = ['time', '--model', model, '--lora', lora, '--tokens', tokens.join(','), '--threads', String(threads),
    '--repeat', String(repeat), '--warmup', String(warmup)];
  if (stop) argv.push('--stop-after', `l_out-${LAYER}`);
  const { out, rssKb } = runMeasured(LLAMA_REF, argv);
  const j = JSON.parse(out);
  j.rss_kb = rssKb;
  return j;
}

// llama.cpp generating AV_STEPS tokens after the AV prompt with the AV LoRA (its default context), K sequences at once.
function runLlamaGen(model, lora, tokens, parallel, threads) {
  const argv = ['decode', '--model', model, '--lora', lora, '--tokens', tokens.join(','), '--steps', String(AV_STEPS),
    '--parallel', String(parallel), '--default-ctx', '--threads', String(threads)];
  const { out, rssKb } = runMeasured(LLAMA_REF, argv);
  const j = JSON.parse(out);
  j.rss_kb = rssKb;
  return j;
}

// Cold start: the model and adapter dropped from the page cache, then a new process loads them and runs one
// 64-token reconstruct (nla-ar) / one decode stopped after l_out-17 (llama.cpp).
function evict(bin, files) {
  const r = spawnSync(bin, ['--evict', files.join(',')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`evict failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function coldStart(bin, model, m, a) {
  const files = [model, ...fs.readdirSync(m.adapterDir).map((f) => path.join(m.adapterDir, f))];
  const ev1 = evict(bin, files);
  const nla = runMeasured(bin, ['--model', model, '--adapter', m.adapterDir, '--layer', String(LAYER), '--threads', String(a.threads),
    '--lengths', '64', '--repeat', '1', '--warmup', '0', '--batch', '0']);
  const n = JSON.parse(nla.out);
  const ev2 = evict(bin, files);
  const ref = runLlama(model, m.loraGguf, prompt(64, 1), { repeat: 1, warmup: 0, threads: a.threads });
  const resid = (e) => Math.max(...Object.values(e).map((x) => x.after));
  return {
    nla: n.load_ms + n.lengths[64].first_ms,
    ref: ref.load_ms + ref.decode_ms[0],
    residentAfterEvict: Math.max(resid(ev1), resid(ev2)),
  };
}

function machine() {
  let model = '';
  try {
    model = execFileSync('lscpu', { encoding: 'utf8' }).split('\n').find((l) => l.startsWith('Model name'))?.split(':')[1]?.trim() ?? '';
  } catch {}
  const flags = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '';
  const isa = ['avx512_vnni', 'avx512f', 'avx2'].filter((f) => new RegExp(`\\b${f}\\b`).test(flags));
  const mhz = Math.round(Number((/cpu MHz\s*:\s*([\d.]+)/.exec(flags) || [])[1] || 0));
  return { model: model || os.cpus()[0]?.model || 'unknown', cores: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30), isa, mhz };
}

function commit() {
  try {
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${head} (+ uncommitted changes)` : head;
  } catch {
    return 'unknown';
  }
}

function fmt(x, d = 1) {
  return x == null || Number.isNaN(x) ? '—' : x.toFixed(d);
}

// The per-op profile: nla_bench with every backend op timed: one profiled run per reconstruct length after the timed
// ones, then one profiled AV generation of 1 and of AV_BATCH activations (prompt + AV_STEPS tokens each).
function opsTable(lines, title, p, peak) {
  const total = Object.values(p.ops).reduce((s, o) => s + o.seconds, 0);
  lines.push('');
  lines.push(`#### ${title}, ${fmt(total * 1000)} ms in ops in the profiled run`);
  lines.push('');
  lines.push('| op class | calls | ms | share | achieved | of int8 peak |');
  lines.push('|---|---:|---:|---:|---:|---:|');
  const rows = Object.entries(p.ops).sort((x, y) => y[1].seconds - x[1].seconds);
  for (const [name, o] of rows) {
    const gops = o.ops / o.seconds / 1e9, gbs = o.bytes / o.seconds / 1e9;
    const perf = o.ops > 0 ? `${fmt(gops, 1)} GOPS, ${fmt(gbs, 2)} GB/s` : `${fmt(gbs, 2)} GB/s`;
    const ofPeak = name.startsWith('matmul:') && peak ? `${fmt((100 * gops) / peak, 0)} %` : '';
    lines.push(`| ${name} | ${o.calls} | ${fmt(o.seconds * 1000, 2)} | ${fmt((100 * o.seconds) / total, 1)} % | ${perf} | ${ofPeak} |`);
  }
  const c = p.counters;
  lines.push(`| (inside the products: activation quantization) | | ${fmt(c['cpu.quantize_seconds'] * 1000, 2)} | ${fmt((100 * c['cpu.quantize_seconds']) / total, 1)} % | | |`);
  lines.push(`| (thread pool: callers waiting for the last chunks, ${c['cpu.pool_loops']} loops) | | ${fmt(c['cpu.pool_wait_seconds'] * 1000, 2)} | ${fmt((100 * c['cpu.pool_wait_seconds']) / total, 1)} % | | |`);
}

async function profile(a, m, bin, av) {
  const { out } = runMeasured(bin, ['--model', m.q4_k_m, '--adapter', m.adapterDir, '--layer', String(LAYER), '--threads', String(a.threads),
    '--lengths', '64,256', '--repeat', '2', '--warmup', '1', '--batch', '0', '--profile', '1',
    '--av', av.dir, '--av-template', av.templateFile, '--av-marker', av.marker.join(','), '--av-steps', String(AV_STEPS), '--av-batch', String(AV_BATCH)]);
  const j = JSON.parse(out);
  const mc = machine();
  const mhz = mc.mhz || 0;
  // Peak int8 throughput assumed: 128 int8 operations (64 multiply-adds) per cycle and core — two 256-bit
  // vpmaddubsw (AVX2) or one 512-bit vpdpbusd (AVX-512 VNNI) per cycle.
  const peak = (128 * a.threads * mhz * 1e6) / 1e9;
  const lines = [];
  lines.push(`Measured ${new Date().toISOString()} on **${mc.model}** (${mc.isa.join(', ')}, ${mhz ? `${mhz} MHz reported` : 'clock unknown'}), ${a.threads} threads, ` +
    `commit \`${commit()}\`, q4_k_m model with the AR LoRA, blocks 0–${LAYER}, and with the AV LoRA, every block and the LM head; every op timed on the calling thread (command: \`npm run bench -- --profile\`). ` +
    `int8 peak assumed ${peak ? peak.toFixed(0) : '?'} GOPS (128 int8 ops per cycle and core × ${a.threads} × the reported clock).`);
  for (const L of ['64', '256']) opsTable(lines, `AR, ${L} tokens: ${fmt(j.lengths[L].median_ms)} ms per reconstruct (timed runs)`, j.lengths[L].profile, peak);
  const v = j.av;
  const rate = (ms, pre, n) => (n * (AV_STEPS - 1)) / ((ms - pre) / 1000);
  opsTable(lines, `AV, 1 activation: ${v.prompt_tokens}-token prompt + ${v.steps} tokens, ${fmt(v.gen1_ms)} ms (timed runs; decode ${fmt(rate(v.gen1_ms, v.prefill1_ms, 1))} tok/s)`, v.profile1, peak);
  opsTable(lines, `AV, ${v.batch} activations together: ${fmt(v.genB_ms)} ms (timed runs; decode ${fmt(rate(v.genB_ms, v.prefillB_ms, v.batch))} tok/s)`, v.profileB, peak);
  const md = lines.join('\n');
  process.stdout.write(md + '\n');
  if (a.write) {
    const doc = path.join(ROOT, 'docs', 'benchmarks.md');
    const old = fs.readFileSync(doc, 'utf8');
    const marker = '<!-- bench:profile -->', end = '<!-- /bench:profile -->';
    const block = `${marker}\n${md}\n${end}`;
    fs.writeFileSync(doc, old.includes(marker) ? old.slice(0, old.indexOf(marker)) + block + old.slice(old.indexOf(end) + end.length) : `${old}\n## Profile\n\n${block}\n`);
    log(`wrote the profile to ${path.relative(ROOT, doc)}`);
  }
}

async function main() {
  const a = args();
  if (!fs.existsSync(LLAMA_REF)) throw new Error(`${LLAMA_REF} is missing: run scripts/setup-reference.sh first (it builds the llama.cpp reference harness)`);
  const m = ensureModels({ q8: a.models.includes('q8_0') && !a.profile });
  const bin = await nlaBench();
  // The AV prompt as the engine tokenizes it (the synthetic vocabulary), for both sides.
  const { DEFAULT_AV_TEMPLATE } = require(path.join(ROOT, 'lib', 'verbalizer.js'));
  const { Tokenizer } = require(path.join(ROOT, 'lib', 'tokenizer.js'));
  const templateFile = path.join(CACHE, 'av-template.txt');
  fs.writeFileSync(templateFile, DEFAULT_AV_TEMPLATE);
  const vocab = m.config.vocab.tokens;
  const av = { dir: m.avDir, templateFile, marker: [vocab.indexOf('\u3297'), vocab.indexOf('>'), vocab.indexOf('<')] };
  if (a.profile) return profile(a, m, bin, av);
  const avPrompt = Array.from((await Tokenizer.fromGGUF(m.q4_k_m)).encode(DEFAULT_AV_TEMPLATE));
  const results = {};
  const load = [os.loadavg()[0]];
  for (const q of a.models) {
    const model = m[q];
    const rounds = [];
    for (let r = 0; r < a.rounds; r++) {
      log(`${q}: round ${r + 1}/${a.rounds}: nla-ar...`);
      const nla = runNla(bin, model, m.adapterDir, a, av);
      // the AR alone (no AV adapter, no generation): its peak RSS, and a load with the file surely cached
      const arOnly = runNla(bin, model, m.adapterDir, { ...a, repeat: 1 }, null);
      log(`${q}: round ${r + 1}/${a.rounds}: llama.cpp...`);
      const ref = {};
      for (const L of LENGTHS) ref[L] = runLlama(model, m.loraGguf, prompt(L, 1), { repeat: a.repeat, threads: a.threads });
      ref.full64 = runLlama(model, m.loraGguf, prompt(64, 1), { stop: false, repeat: a.repeat, threads: a.threads });
      ref.batch = runLlama(model, m.loraGguf, prompt(BATCH_LEN, 1001), { repeat: BATCH, threads: a.threads });
      log(`${q}: round ${r + 1}/${a.rounds}: llama.cpp generation (AV LoRA)...`);
      ref.gen1 = runLlamaGen(model, m.avLoraGguf, avPrompt, 1, a.threads);
      ref.genB = runLlamaGen(model, m.avLoraGguf, avPrompt, AV_BATCH, a.threads);
      log(`${q}: round ${r + 1}/${a.rounds}: cold starts...`);
      const cold = coldStart(bin, model, m, a);
      rounds.push({ nla, arOnly, ref, cold });
      load.push(os.loadavg()[0]);
    }
    const med = (f) => median(rounds.map(f));
    const row = { rounds };
    row.kernels = rounds[0].nla.backend;
    row.weights = rounds[0].nla.weights;
    for (const L of LENGTHS) {
      row[`nla${L}`] = med((x) => x.nla.lengths[L].median_ms);
      row[`ref${L}`] = med((x) => x.ref[L].median_ms);
    }
    row.refFull64 = med((x) => x.ref.full64.median_ms);
    row.nlaBatch = med((x) => x.nla.batch.median_ms);
    row.nlaLooped = med((x) => x.nla.batch.looped_median_ms);
    row.refBatch = med((x) => x.ref.batch.decode_ms.reduce((s, v) => s + v, 0));
    // decode rates (tokens/s): generated tokens after the first / the time after the prefill
    const dec = AV_STEPS - 1;
    row.nlaGen1 = med((x) => dec / ((x.nla.av.gen1_ms - x.nla.av.prefill1_ms) / 1000));
    row.nlaGenB = med((x) => (AV_BATCH * dec) / ((x.nla.av.genB_ms - x.nla.av.prefillB_ms) / 1000));
    row.refGen1 = med((x) => AV_STEPS / (x.ref.gen1.decode_ms / 1000));
    row.refGenB = med((x) => (AV_BATCH * AV_STEPS) / (x.ref.genB.decode_ms / 1000));
    row.avPrompt = rounds[0].nla.av.prompt_tokens;
    row.nlaCold = med((x) => x.cold.nla);
    row.refCold = med((x) => x.cold.ref);
    row.coldResident = Math.max(...rounds.map((x) => x.cold.residentAfterEvict));
    row.nlaLoad = med((x) => x.nla.load_ms);
    row.refLoad = med((x) => x.ref[64].load_ms);
    row.nlaRss = Math.max(...rounds.map((x) => x.nla.rss_kb)) / 1024;
    row.arOnlyRss = Math.max(...rounds.map((x) => x.arOnly.rss_kb)) / 1024;
    row.arOnlyLoad = med((x) => x.arOnly.load_ms);
    row.refRss = Math.max(...rounds.flatMap((x) => [x.ref[256].rss_kb, x.ref.full64.rss_kb, x.ref.batch.rss_kb])) / 1024;
    results[q] = row;
    log(`${q}: 64 tok nla ${fmt(row.nla64)} ms, llama.cpp stopped ${fmt(row.ref64)} ms, full ${fmt(row.refFull64)} ms`);
  }
  const info = { machine: machine(), date: new Date().toISOString(), commit: commit(), load, threads: a.threads, argv: process.argv.slice(2) };
  const md = render(results, info, a);
  process.stdout.write(md + '\n');
  fs.writeFileSync(path.join(CACHE, 'last-results.json'), JSON.stringify({ info, results }, null, 2));
  if (a.write) {
    const doc = path.join(ROOT, 'docs', 'benchmarks.md');
    fs.mkdirSync(path.dirname(doc), { recursive: true });
    const old = fs.existsSync(doc) ? fs.readFileSync(doc, 'utf8') : '';
    const marker = '<!-- bench:results -->';
    const endMarker = '<!-- /bench:results -->';
    const block = `${marker}\n${md}\n${endMarker}`;
    let next;
    if (old.includes(marker) && old.includes(endMarker)) {
      next = old.slice(0, old.indexOf(marker)) + block + old.slice(old.indexOf(endMarker) + endMarker.length);
    } else {
      next = `# Benchmarks\n\n${block}\n`;
    }
    fs.writeFileSync(doc, next);
    log(`wrote ${path.relative(ROOT, doc)}`);
  }
}

function render(results, info, a) {
  const lines = [];
  const mc = info.machine;
  lines.push(`Measured ${info.date} on **${mc.model}**, ${mc.cores} cores, ${mc.memGiB} GiB (${mc.isa.join(', ')}); commit \`${info.commit}\`.`);
  lines.push(`Command: \`npm run bench${info.argv.length ? ' -- ' + info.argv.join(' ') : ''}\` — ${a.threads} threads on both sides, ` +
    `${a.repeat} timed repetitions after 1 warm-up per process, ${a.rounds} rounds (nla-ar then llama.cpp, back to back); ` +
    `medians. Load average (1 min) during the run: ${info.load.map((x) => x.toFixed(2)).join(' → ')} ` +
    `(other processes were running: the machine is shared).`);
  lines.push('');
  lines.push('Model: full-size E2B-shaped synthetic Gemma 4 (4096-token synthetic vocabulary), quantized by llama.cpp; ' +
    'adapter: AR-shaped PEFT LoRA r=64, alpha=128 on q/k/v/o (k/v on layers 0–14 only), fp32, with its linear head ' +
    '(llama.cpp gets the same LoRA as a LoRA GGUF). nla-ar runs blocks 0–17 and reads the last token\'s block-17 state; ' +
    'llama.cpp decodes the same tokens (default context: f16 KV cache, flash attention auto) either stopped after ' +
    '`l_out-17` (early abort) or through the full graph with the LM head.');
  lines.push('');
  for (const [q, r] of Object.entries(results)) {
    lines.push(`### ${q} (${r.weights}; nla-ar: ${r.kernels})`);
    lines.push('');
    lines.push('| measurement | nla-ar | llama.cpp | ratio (llama.cpp / nla-ar) | target |');
    lines.push('|---|---:|---:|---:|---|');
    for (const L of LENGTHS) {
      const tgt = L === 64 ? '≥ 1.5×' : '';
      lines.push(`| reconstruct ${L} tokens, LoRA (llama.cpp stopped after l_out-17) | ${fmt(r[`nla${L}`])} ms | ${fmt(r[`ref${L}`])} ms | **${fmt(r[`ref${L}`] / r[`nla${L}`], 2)}×** | ${tgt} |`);
    }
    lines.push(`| reconstruct 64 tokens, LoRA (llama.cpp full graph) | ${fmt(r.nla64)} ms | ${fmt(r.refFull64)} ms | **${fmt(r.refFull64 / r.nla64, 2)}×** | ≥ 3× |`);
    lines.push(`| throughput, ${BATCH} explanations × ${BATCH_LEN} tokens (llama.cpp stopped) | ${fmt(BATCH / (r.nlaBatch / 1000), 2)} /s | ${fmt(BATCH / (r.refBatch / 1000), 2)} /s | **${fmt(r.refBatch / r.nlaBatch, 2)}×** | ≥ 2× |`);
    lines.push(`| batched vs looped: the same ${BATCH} explanations as one request vs ${BATCH} requests (nla-ar both sides) | ${fmt(BATCH / (r.nlaBatch / 1000), 2)} /s | ${fmt(BATCH / (r.nlaLooped / 1000), 2)} /s (looped) | **${fmt(r.nlaLooped / r.nlaBatch, 2)}×** (looped / batched) |  |`);
    lines.push(`| AV decode, 1 activation, ${AV_STEPS} tokens after the ${r.avPrompt}-token prompt (AV LoRA; llama.cpp the same without injection) | ${fmt(r.nlaGen1, 1)} tok/s | ${fmt(r.refGen1, 1)} tok/s | **${fmt(r.nlaGen1 / r.refGen1, 2)}×** | ≥ 1.2× |`);
    lines.push(`| AV decode, ${AV_BATCH} activations together (llama.cpp: ${AV_BATCH} parallel sequences) | ${fmt(r.nlaGenB, 1)} tok/s | ${fmt(r.refGenB, 1)} tok/s | **${fmt(r.nlaGenB / r.refGenB, 2)}×** | ≥ 1.5× |`);
    lines.push(`| AV batch gain: ${AV_BATCH} together vs 1 (nla-ar both sides) | ${fmt(r.nlaGenB, 1)} tok/s | ${fmt(r.nlaGen1, 1)} tok/s | **${fmt(r.nlaGenB / r.nlaGen1, 2)}×** | ≥ 8× |`);
    lines.push(`| cold start: files evicted from the page cache (resident after: ${fmt(100 * r.coldResident, 0)} %), new process, load + first 64-token reconstruct | ${fmt(r.nlaCold, 0)} ms | ${fmt(r.refCold, 0)} ms | ${fmt(r.refCold / r.nlaCold, 2)}× | ≤ 3 s, ≤ 2× llama.cpp's |`);
    lines.push(`| warm load (new process: model + AR adapter, right after another process read the file) | ${fmt(r.arOnlyLoad, 0)} ms (the AV process, after the cold-start rows: ${fmt(r.nlaLoad, 0)} ms) | ${fmt(r.refLoad, 0)} ms | ${fmt(r.refLoad / r.arOnlyLoad, 2)}× | ≤ 150 ms |`);
    lines.push(`| peak RSS, AR only (whole process: model + AR adapter, 16/64/256-token reconstructs, the 16-explanation batch) | ${fmt(r.arOnlyRss, 0)} MiB | ${fmt(r.refRss, 0)} MiB | ${fmt(r.refRss / r.arOnlyRss, 2)}× | ≤ 1.5 GB (q4_k_m) |`);
    lines.push(`| peak RSS, AR + AV (one base model with both adapters, their runs and 16 sequences' KV caches included) | ${fmt(r.nlaRss, 0)} MiB | ${fmt(r.refRss, 0)} MiB | ${fmt(r.refRss / r.nlaRss, 2)}× | (report) |`);
    lines.push('');
  }
  return lines.join('\n');
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
module.exports = { prompt };
