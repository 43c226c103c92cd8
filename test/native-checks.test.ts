/**
 * The engine's own check programs (test/reference/*_check.cpp, built against native/*.cc by
 * scripts/setup-reference.sh into .cache/reference/bin): each must exit 0 and report `N passed, 0 failed`
 * with N at least the number of checks they hold today, so a check that silently stops running is caught too.
 *   quant_check      dequant/quantize/vec_dot of every format vs ggml, fp16/bf16 conversions   (925 checks)
 *   gguf_check       malformed GGUF files each rejected with their code (+ a 3000-file fuzz)   (40)
 *   lora_check       PEFT adapter loader, safetensors reader, JSON parser                      (131)
 *   tokenizer_check  HF's 46 cases, the gemma4.md §6 vectors, decode(encode(s)) == s           (144)
 * Skipped when the reference has not been built. A binary older than the sources it was built from is
 * rebuilt by `npm test` (pretest runs setup-reference.sh); run it by hand before a standalone run.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { referenceAvailable, vocabGemma4Path } from './helpers/llamaRef';

const execFileP = promisify(execFile);
const BIN = path.resolve(__dirname, '..', '.cache', 'reference', 'bin');
const ref = referenceAvailable();
if (!ref) console.warn('llama.cpp reference not built (scripts/setup-reference.sh): native check programs skipped');

interface Check {
  name: string;
  args: () => string[];
  floor: number;
}

const CHECKS: Check[] = [
  { name: 'quant_check', args: () => [], floor: 925 },
  // 3000 fuzzed files instead of the default 20000: each is written to /tmp, which makes the default run take
  // 5-75 s of I/O wait on a busy machine; 3000 still exercises every header field many times (1 check either way)
  { name: 'gguf_check', args: () => ['3000'], floor: 40 },
  { name: 'lora_check', args: () => [], floor: 131 },
  { name: 'tokenizer_check', args: () => [vocabGemma4Path(), `${vocabGemma4Path()}.inp`, `${vocabGemma4Path()}.out`], floor: 144 },
];

describe.each(CHECKS)('$name', ({ name, args, floor }) => {
  const bin = path.join(BIN, name);
  const available = ref && fs.existsSync(bin);
  if (ref && !available) console.warn(`${bin} was not built (see ${bin}.log): skipped`);

  (available ? test : test.skip)(`exits 0 and reports at least ${floor} passed, 0 failed`, async () => {
    let stdout = '', stderr = '', code = 0;
    try {
      ({ stdout, stderr } = await execFileP(bin, args(), { maxBuffer: 64 << 20, timeout: 120_000, encoding: 'utf8' }));
    } catch (e) {
      const err = e as { code?: number; stdout?: string; stderr?: string };
      code = typeof err.code === 'number' ? err.code : -1;
      stdout = err.stdout ?? '';
      stderr = err.stderr ?? String(e);
    }
    // the failing checks print {"ok":false,...} lines: show them
    const failures = stdout.split('\n').filter((l) => l.includes('"ok":false') || /FAIL/.test(l));
    const m = new RegExp(`${name}: (\\d+) passed, (\\d+) failed`).exec(stdout);
    if (!m) throw new Error(`${name} printed no summary line (exit ${code})\n${stdout.slice(-2000)}\n${stderr.slice(-2000)}`);
    const [passed, failed] = [Number(m[1]), Number(m[2])];
    if (code !== 0 || failed !== 0) {
      throw new Error(`${name}: exit ${code}, ${passed} passed, ${failed} failed:\n${failures.slice(0, 20).join('\n')}\n${stderr.slice(-1000)}`);
    }
    expect(passed).toBeGreaterThanOrEqual(floor);
  });
});
