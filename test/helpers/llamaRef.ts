// Test-side access to the llama.cpp reference harness (.cache/reference/bin/llama_ref, built by
// scripts/setup-reference.sh). Tests should skip themselves when referenceAvailable() is false:
//   const itRef = referenceAvailable() ? it : it.skip;
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

const ROOT = path.resolve(__dirname, '..', '..');
const REF_DIR = path.join(ROOT, '.cache', 'reference');

export function llamaRefPath(): string {
  return path.join(REF_DIR, 'bin', 'llama_ref');
}

/** True when setup-reference.sh has run here (binary and vocab present). */
export function referenceAvailable(): boolean {
  return fs.existsSync(llamaRefPath()) && fs.existsSync(vocabGemma4Path());
}

/** Root of the llama.cpp v0.5.0 source tree (headers, gguf-py, models/). */
export function llamaCppSourceDir(): string {
  return path.join(REF_DIR, 'llama.cpp');
}

/** The real Gemma-4 vocabulary GGUF shipped in llama.cpp's test data. */
export function vocabGemma4Path(): string {
  return path.join(llamaCppSourceDir(), 'models', 'ggml-vocab-gemma-4.gguf');
}

async function run(args: string[], timeoutMs = 30 * 60_000): Promise<string> {
  try {
    const { stdout } = await execFileP(llamaRefPath(), args, {
      maxBuffer: 1 << 30,
      timeout: timeoutMs,
      encoding: 'utf8',
    });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`llama_ref ${args[0]} failed: ${(err.stderr || err.message).trim()}`);
  }
}

/** A fresh temp dir, removed (with its contents) after fn settles. */
async function withTmp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llama-ref-'));
  try {
    return await fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface RefTensor {
  /** ggml shape, ne[0] innermost (e.g. l_out-N is [n_embd, n_tokens, 1, 1]). */
  ne: number[];
  data: Float32Array;
}

export interface DumpOptions {
  model: string;
  tokens: ArrayLike<number>;
  /** llama.cpp callback names, e.g. 'l_out-17', 'attn_norm-0' (gemma4.md §2.7). */
  tensors: string[];
  lora?: string;
  loraScale?: number;
  /** Abort the graph right after this tensor was computed (e.g. 'l_out-17'). */
  stopAfter?: string;
  threads?: number;
  /** Outputs for every token (affects the last block, which llama.cpp otherwise trims to the output rows). */
  allOutputs?: boolean;
  /** Disable CPU weight repacking (use_extra_bufts = false). */
  noRepack?: boolean;
}

/** Parses the dump file: u64 LE header length, JSON header, raw f32 data. */
export function readDumpFile(file: string): Map<string, RefTensor> {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as {
    tensors: Record<string, { ne: number[]; offset: number }>;
  };
  const base = 8 + n;
  const out = new Map<string, RefTensor>();
  for (const [name, t] of Object.entries(header.tensors)) {
    const count = t.ne.reduce((a, b) => a * b, 1);
    // copy into a fresh (aligned) buffer; the data section is not 4-byte aligned in the file
    const bytes = buf.subarray(base + t.offset, base + t.offset + 4 * count);
    const data = new Float32Array(count);
    new Uint8Array(data.buffer).set(bytes);
    out.set(name, { ne: t.ne, data });
  }
  return out;
}

/**
 * Runs one llama.cpp decode of `tokens` (f32 KV cache, flash attention off, one ubatch) and returns the named
 * intermediate tensors as f32.
 */
export async function dumpTensors(opts: DumpOptions): Promise<Map<string, RefTensor>> {
  return withTmp(async (dir) => {
    const out = path.join(dir, 'dump.bin');
    const args = ['dump', '--model', opts.model, '--tokens', Array.from(opts.tokens).join(','),
      '--tensors', opts.tensors.join(','), '--out', out];
    if (opts.lora) args.push('--lora', opts.lora);
    if (opts.loraScale !== undefined) args.push('--lora-scale', String(opts.loraScale));
    if (opts.stopAfter) args.push('--stop-after', opts.stopAfter);
    if (opts.threads) args.push('--threads', String(opts.threads));
    if (opts.allOutputs) args.push('--all-outputs');
    if (opts.noRepack) args.push('--no-repack');
    await run(args);
    return readDumpFile(out);
  });
}

/**
 * Tokenizes each string with llama.cpp. bos: add BOS (add_special); special: parse special tokens in the text.
 * Both default to true (what the AR prompt uses). Use {bos:false, special:false} to match the HF .out files.
 */
export async function tokenizeRef(
  vocabPath: string,
  strings: string[],
  opts: { bos?: boolean; special?: boolean } = {},
): Promise<number[][]> {
  return withTmp(async (dir) => {
    const inp = path.join(dir, 'in.jsonl');
    const out = path.join(dir, 'out.jsonl');
    fs.writeFileSync(inp, strings.map((s) => JSON.stringify(s)).join('\n') + '\n');
    const args = ['tokenize', '--model', vocabPath, '--in', inp, '--out', out];
    if (opts.bos === false) args.push('--no-bos');
    if (opts.special === false) args.push('--no-special');
    await run(args);
    const lines = fs.readFileSync(out, 'utf8').split('\n').filter((l) => l.length > 0);
    if (lines.length !== strings.length) throw new Error(`llama_ref tokenize: ${lines.length} results for ${strings.length} strings`);
    return lines.map((l) => JSON.parse(l) as number[]);
  });
}

export interface DecodeOptions {
  model: string;
  /** The prompt (BOS first). */
  tokens: ArrayLike<number>;
  /** Tokens decoded after the prompt. */
  steps: number;
  /** Teacher forcing: feed these `steps` tokens instead of the argmax. */
  force?: ArrayLike<number>;
  lora?: string;
  loraScale?: number;
  threads?: number;
  /** K copies of the prompt decoded together (timing). */
  parallel?: number;
  /** llama.cpp's default context (f16 KV, flash attention auto) instead of f32 KV / FA off (timing). */
  defaultCtx?: boolean;
  /** Return sequence 0's logits after the prefill and after every step. */
  logits?: boolean;
}

export interface DecodeResult {
  /** Sequence 0's decoded tokens (the argmax each step, or the forced ones). */
  tokens: number[];
  /** logits[0]: after the prefill (predicts token 0); logits[i]: after step i. Empty unless asked. */
  logits: Float32Array[];
  prefill_ms: number;
  decode_ms: number;
  n_vocab: number;
}

/** llama.cpp decoding through its KV cache: prefill, then one token per step (greedy or teacher-forced). */
export async function decodeRef(opts: DecodeOptions): Promise<DecodeResult> {
  return withTmp(async (dir) => {
    const out = path.join(dir, 'logits.bin');
    const args = ['decode', '--model', opts.model, '--tokens', Array.from(opts.tokens).join(','), '--steps', String(opts.steps)];
    if (opts.force) args.push('--force', Array.from(opts.force).join(','));
    if (opts.lora) args.push('--lora', opts.lora);
    if (opts.loraScale !== undefined) args.push('--lora-scale', String(opts.loraScale));
    if (opts.threads) args.push('--threads', String(opts.threads));
    if (opts.parallel) args.push('--parallel', String(opts.parallel));
    if (opts.defaultCtx) args.push('--default-ctx');
    if (opts.logits) args.push('--out', out);
    const r = JSON.parse(await run(args)) as Omit<DecodeResult, 'logits'>;
    const logits: Float32Array[] = [];
    if (opts.logits) {
      const m = readDumpFile(out);
      for (let i = 0; i <= opts.steps; i++) logits.push(m.get(`logits-${i}`)!.data);
    }
    return { ...r, logits };
  });
}

export type RefQuantType =
  | 'q4_k_m' | 'q4_k_s' | 'q5_k_m' | 'q5_k_s' | 'q6_k' | 'q8_0'
  | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'f16' | 'bf16' | 'f32';

/** Quantizes a GGUF with llama_model_quantize (f16 E2B -> q4_k_m takes ~140 s on 2 threads). */
export async function quantizeRef(inPath: string, outPath: string, type: RefQuantType, threads?: number): Promise<void> {
  const args = ['quantize', '--in', inPath, '--out', outPath, '--type', type];
  if (threads) args.push('--threads', String(threads));
  await run(args);
}

export interface TimeOptions {
  model: string;
  tokens: ArrayLike<number>;
  lora?: string;
  loraScale?: number;
  stopAfter?: string;
  threads?: number;
  repeat?: number;
  warmup?: number;
  /** f32 KV + flash attention off (the dump settings). Default: llama.cpp defaults (f16 KV, FA auto). */
  f32Kv?: boolean;
}

export interface TimeResult {
  load_ms: number;
  decode_ms: number[];
  median_ms: number;
  threads: number;
  n_tokens: number;
  f32_kv: boolean;
}

/** Loads once, then times `repeat` decodes of the prompt (memory cleared between runs). */
export async function timeRef(opts: TimeOptions): Promise<TimeResult> {
  const args = ['time', '--model', opts.model, '--tokens', Array.from(opts.tokens).join(',')];
  if (opts.lora) args.push('--lora', opts.lora);
  if (opts.loraScale !== undefined) args.push('--lora-scale', String(opts.loraScale));
  if (opts.stopAfter) args.push('--stop-after', opts.stopAfter);
  if (opts.threads) args.push('--threads', String(opts.threads));
  if (opts.repeat) args.push('--repeat', String(opts.repeat));
  if (opts.warmup !== undefined) args.push('--warmup', String(opts.warmup));
  if (opts.f32Kv) args.push('--f32-kv');
  return JSON.parse(await run(args)) as TimeResult;
}

/**
 * Hugging Face's own tokenizations of 46 tricky strings, from llama.cpp's test data
 * (models/ggml-vocab-gemma-4.gguf.inp/.out). The .inp cases are separated by "\n__ggml_vocab_test__\n";
 * each .out line holds the space-separated ids of one case (empty line = no tokens). Produced with
 * add_special_tokens=False, i.e. no BOS: compare with tokenizeRef(..., {bos:false, special:false}).
 */
export function loadHfTokenizerCases(): { text: string; ids: number[] }[] {
  const base = vocabGemma4Path();
  const inp = fs.readFileSync(base + '.inp', 'utf8').split('\n__ggml_vocab_test__\n');
  const out = fs.readFileSync(base + '.out', 'utf8').split('\n');
  if (out.length > 0 && out[out.length - 1] === '') out.pop(); // trailing newline of the file
  if (inp.length !== out.length) throw new Error(`vocab test files disagree: ${inp.length} inputs, ${out.length} outputs`);
  return inp.map((text, i) => ({
    text,
    ids: out[i].trim() === '' ? [] : out[i].trim().split(/\s+/).map(Number),
  }));
}
