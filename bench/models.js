// Benchmark inputs, generated once and cached under .cache/bench/:
//   e2b-f16.gguf      full-size E2B-shaped synthetic Gemma 4 (4096-token synthetic vocab), f16
//   e2b-q4_k_m.gguf   the same quantized by llama.cpp (llama_model_quantize)
//   e2b-q8_0.gguf     idem, q8_0
//   ar-adapter/       AR-shaped PEFT adapter: r=64, alpha=128, q/k/v/o (k/v only on layers 0-14), linear head
//                     (+ lora.gguf, the same LoRA for llama.cpp)
//   av-adapter/       AV-shaped PEFT adapter: r=64, alpha=128, attention and MLP (+ lora.gguf)
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..');
const CACHE = path.join(ROOT, '.cache', 'bench');
const LLAMA_REF = path.join(ROOT, '.cache', 'reference', 'bin', 'llama_ref');

function synthetic() {
  const lib = path.join(ROOT, 'dist-tools', 'tools', 'synthetic', 'index.js');
  if (!fs.existsSync(lib)) throw new Error('lib/ is missing: run `npm run build:ts` first');
  return require(lib);
}

function log(msg) {
  process.stderr.write(`[bench] ${msg}\n`);
}

function atomically(target, make) {
  if (fs.existsSync(target)) return target;
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const tmp = `${target}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  make(tmp);
  fs.renameSync(tmp, target);
  return target;
}

function config() {
  return synthetic().e2bShapesConfig({ weightType: 'f16', seed: 1234 });
}

function ensureModels({ q8 = true } = {}) {
  const s = synthetic();
  const cfg = config();
  const f16 = path.join(CACHE, 'e2b-f16.gguf');
  const t0 = Date.now();
  atomically(f16, (tmp) => {
    log('writing the E2B-shaped f16 model (~3.9 GB, once)...');
    let last = 0;
    s.writeSyntheticGemma4(tmp, cfg, {
      onProgress: (p) => {
        const pct = Math.floor((100 * p.bytesWritten) / p.totalBytes);
        if (pct >= last + 10) { last = pct; log(`  ${pct}%`); }
      },
    });
    log(`  done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  });
  const quant = (type) =>
    atomically(path.join(CACHE, `e2b-${type}.gguf`), (tmp) => {
      const t = Date.now();
      log(`quantizing to ${type} with llama.cpp (~2-3 min, once)...`);
      execFileSync(LLAMA_REF, ['quantize', '--in', f16, '--out', tmp, '--type', type, '--threads', '2'], { stdio: ['ignore', 'ignore', 'inherit'] });
      log(`  done in ${((Date.now() - t) / 1000).toFixed(0)} s`);
    });
  const q4 = quant('q4_k_m');
  const q8p = q8 ? quant('q8_0') : null;
  const adapterDir = atomically(path.join(CACHE, 'ar-adapter'), (tmp) => {
    log('writing the AR-shaped adapter (r=64, q/k/v/o, head)...');
    const adapter = s.writePeftAdapter(tmp, cfg, {
      rank: 64,
      alpha: 128,
      targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
      dtype: 'F32',
      seed: 77,
      includeHead: { seed: 78 },
    });
    s.writeLlamaCppLoraGguf(path.join(tmp, 'lora.gguf'), cfg, adapter);
  });
  const avDir = atomically(path.join(CACHE, 'av-adapter'), (tmp) => {
    log('writing the AV-shaped adapter (r=64, attention + MLP)...');
    const adapter = s.writePeftAdapter(tmp, cfg, {
      rank: 64,
      alpha: 128,
      targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
      dtype: 'F32',
      seed: 79,
    });
    s.writeLlamaCppLoraGguf(path.join(tmp, 'lora.gguf'), cfg, adapter);
  });
  return {
    config: cfg, f16, q4_k_m: q4, q8_0: q8p, adapterDir, loraGguf: path.join(adapterDir, 'lora.gguf'),
    avDir, avLoraGguf: path.join(avDir, 'lora.gguf'),
  };
}

module.exports = { ROOT, CACHE, LLAMA_REF, ensureModels, config, log };

if (require.main === module) {
  const m = ensureModels();
  console.log(JSON.stringify({ ...m, config: undefined }, null, 2));
}
