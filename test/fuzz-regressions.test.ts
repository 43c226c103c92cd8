/**
 * Every committed fuzz input — the seed corpora (test/fuzz/corpus/<target>/) and the inputs that once crashed,
 * hung or exhausted memory (test/fuzz/regressions/<target>/) — replayed through each fuzz target built without
 * the fuzzer: the native harnesses linked with the engine (scripts/fuzz.sh replay-build, against
 * build/libnla_core.a) and the TypeScript targets called directly. A target may only refuse an input with a typed
 * error; a crash, another exception or a hang fails here. The fuzzers themselves run in CI (scripts/ci-fuzz.sh)
 * and by `npm run fuzz`.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TS_TARGETS } from './fuzz/js/targets';
import { writeSyntheticVocab } from './fuzz/make-corpus';
import { vocabGemma4Path } from './helpers/llamaRef';

const ROOT = path.resolve(__dirname, '..');
const FUZZ = path.join(ROOT, 'test', 'fuzz');
const NATIVE_TARGETS = ['gguf', 'safetensors', 'peft', 'json', 'tokenizer', 'regex'];

const inputsOf = (target: string): string[] =>
  ['corpus', 'regressions'].flatMap((kind) => {
    const dir = path.join(FUZZ, kind, target);
    return fs.existsSync(dir) ? fs.readdirSync(dir).sort().map((f) => path.join(dir, f)) : [];
  });

function vocab(): string {
  const real = vocabGemma4Path();
  if (fs.existsSync(real)) return real;
  const synthetic = path.join(ROOT, '.cache', 'fuzz', 'vocab.gguf');
  if (!fs.existsSync(synthetic)) writeSyntheticVocab(synthetic);
  return synthetic;
}

describe('native fuzz targets replay their corpus and regressions', () => {
  beforeAll(() => {
    const r = spawnSync('bash', [path.join(ROOT, 'scripts', 'fuzz.sh'), 'replay-build'], { encoding: 'utf8', timeout: 600_000 });
    if (r.status !== 0) throw new Error(`scripts/fuzz.sh replay-build failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  });

  test.each(NATIVE_TARGETS)('%s', (target) => {
    const inputs = inputsOf(target);
    expect(inputs.length).toBeGreaterThan(0);
    const r = spawnSync(path.join(ROOT, '.cache', 'fuzz', 'replay', target), inputs, {
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, NLA_FUZZ_VOCAB: vocab() },
    });
    const summary = `${target}: exit ${r.status}, signal ${r.signal}\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`;
    if (r.status !== 0) throw new Error(summary);
    expect(r.stdout).toContain(`replay: ${inputs.length} inputs, 0 findings`);
  });
});

describe('TypeScript fuzz targets replay their corpus and regressions', () => {
  test.each(Object.keys(TS_TARGETS))('%s', (target) => {
    const inputs = inputsOf(target);
    expect(inputs.length).toBeGreaterThan(0);
    const slow: string[] = [];
    for (const file of inputs) {
      const started = Date.now();
      try {
        TS_TARGETS[target]!(fs.readFileSync(file));
      } catch (err) {
        throw new Error(`${target}: ${path.relative(ROOT, file)} is a finding: ${err instanceof Error ? err.stack : String(err)}`);
      }
      if (Date.now() - started > 10_000) slow.push(path.relative(ROOT, file));
    }
    expect(slow).toEqual([]);
  });
});
