// The Hugging Face reference set (test/hf/build.py): a random Gemma-4 made by transformers, PEFT adapters,
// GGUFs made by llama.cpp's converter and quantizer, and transformers + PEFT outputs. Built once per machine into
// .cache/hf-models/<key>, the key hashing the scripts, the spec and the installed Python packages.
import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { llamaCppSourceDir, llamaRefPath, referenceAvailable } from './llamaRef';

const execFileP = promisify(execFile);
const ROOT = path.resolve(__dirname, '..', '..');
export const HF_VENV = path.join(ROOT, '.cache', 'hf-venv');
export const HF_CACHE = path.join(ROOT, '.cache', 'hf-models');
const HF_SCRIPTS = path.join(ROOT, 'test', 'hf');

export function hfPython(): string {
  return path.join(HF_VENV, 'bin', 'python');
}

function sitePackages(): string | null {
  const lib = path.join(HF_VENV, 'lib');
  if (!fs.existsSync(lib)) return null;
  const py = fs.readdirSync(lib).find((d) => d.startsWith('python'));
  return py ? path.join(lib, py, 'site-packages') : null;
}

const NEEDED = ['torch', 'transformers', 'peft', 'safetensors', 'tokenizers', 'numpy'];

/** Installed versions of the Python packages the reference needs (from their dist-info folders). */
function packageVersions(): Record<string, string> | null {
  const sp = sitePackages();
  if (!sp || !fs.existsSync(sp)) return null;
  const out: Record<string, string> = {};
  for (const d of fs.readdirSync(sp)) {
    const m = /^([A-Za-z0-9_.-]+?)-([^-]+)\.dist-info$/.exec(d);
    if (m) out[m[1].toLowerCase().replace(/_/g, '-')] = m[2];
  }
  return NEEDED.every((n) => n in out) ? out : null;
}

/** null when the reference can be built here, else why not (one line). */
export function hfUnavailableReason(): string | null {
  if (!referenceAvailable()) return 'the llama.cpp reference is not set up (scripts/setup-reference.sh)';
  if (!fs.existsSync(hfPython()))
    return `no Python venv at ${path.relative(ROOT, HF_VENV)} (made by scripts/ci-hf.sh from the torch/transformers/peft wheels on disk; none were installed here)`;
  const v = packageVersions();
  if (!v) return `the venv at ${path.relative(ROOT, HF_VENV)} lacks one of ${NEEDED.join(', ')} (rerun scripts/ci-hf.sh)`;
  if (!fs.existsSync(path.join(llamaCppSourceDir(), 'convert_hf_to_gguf.py'))) return 'llama.cpp source tree has no convert_hf_to_gguf.py';
  return null;
}

export function hfKey(): string {
  const h = crypto.createHash('sha256');
  for (const f of fs.readdirSync(HF_SCRIPTS).sort()) {
    if (!/\.(py|json)$/.test(f)) continue;
    h.update(f).update(fs.readFileSync(path.join(HF_SCRIPTS, f)));
  }
  const v = packageVersions() ?? {};
  h.update(JSON.stringify(NEEDED.map((n) => [n, v[n]])));
  // the converter and quantizer are part of what is built
  h.update(fs.readdirSync(path.dirname(llamaCppSourceDir())).filter((f) => f.startsWith('.fetched-')).join(','));
  return h.digest('hex').slice(0, 12);
}

export interface GgufLayout {
  file: string;
  bytes: number;
  n_tensors: number;
  tensor_types: Record<string, number>;
  kv: Record<string, unknown>;
  tensors: { name: string; type: string; ne: number[] }[];
}

export interface HfReferences {
  prompts: string[];
  prompt_ids: number[][];
  texts: string[];
  text_ids: number[][];
  attn_implementation: string;
  /** base model, block-23 output of each raw text, last token */
  activation: number[][];
  /** base model on the AR prompts: block L and the last block, last token; head(block L); block L at all positions of prompt 2 */
  base: { block: number[][]; last_block: number[][]; head: number[][]; all_positions: number[] };
  ar: { block: number[][]; head: number[][]; all_positions: number[]; disable_adapter_equals_base: boolean };
  av: { block: number[][]; last_block: number[][]; last_layer: number };
  base_text: { block: number[][]; last_block: number[][] };
  variants: Record<string, { ar_block: number[][]; ar_head: number[][] }>;
  av_generate: {
    prompt_ids: number[];
    marker_position: number;
    hook_replacements: [number, number][];
    tokens: number[];
    text: string;
    steps: { argmax: number; top: [number, number][] }[];
    vocab: number;
    scaled_norm: number;
  };
  av_generate_other_vector: { tokens: number[]; first_step_top: [number, number][] };
}

export interface HfManifest {
  spec: {
    text_config: Record<string, number | boolean | string>;
    layer: number;
    activation_layer: number;
    template: string;
    explanations: string[];
    texts: string[];
    adapters: Record<string, { r: number; lora_alpha: number; target_modules: string }>;
    av: { prompt: string; marker_id: number; left_id: number; right_id: number; max_new_tokens: number };
  };
  versions: Record<string, string>;
  tokenizer_hf_cases: { cases: number; failed: number };
  vocab_roundtrip: Record<string, string>;
  adapters: Record<string, { lora_B_tensors: number; head?: string }>;
  lora_ggufs: Record<string, string>;
  ggufs: Record<string, string>;
  gguf601: string;
  hf601_added: string[];
  layouts: Record<string, GgufLayout>;
  adapter_files: Record<string, { config: Record<string, unknown>; tensors: Record<string, { dtype: string; shape: number[] }>; files: string[] }>;
  references: HfReferences;
  build_seconds: number;
}

export interface HfSet {
  dir: string;
  manifest: HfManifest;
  /** absolute paths */
  gguf: (type: string) => string;
  adapter: (name: 'ar' | 'av') => string;
  lora: (name: 'ar' | 'av') => string;
  /** seconds the build took now, 0 when it came from the cache */
  builtNowSeconds: number;
}

/** Builds (or reuses) the reference set. Concurrent callers wait on one build through a lock directory. */
export async function hfReferenceSet(log: (s: string) => void = () => {}): Promise<HfSet> {
  const dir = path.join(HF_CACHE, hfKey());
  const manifestPath = path.join(dir, 'reference.json');
  let built = 0;
  if (!fs.existsSync(manifestPath)) {
    fs.mkdirSync(HF_CACHE, { recursive: true });
    const lock = `${dir}.lock`;
    const t0 = Date.now();
    for (;;) {
      try {
        fs.mkdirSync(lock);
        break;
      } catch {
        if (fs.existsSync(manifestPath)) break;
        // a lock older than the longest build is stale (a killed run)
        if (Date.now() - fs.statSync(lock).mtimeMs > 40 * 60_000) fs.rmSync(lock, { recursive: true, force: true });
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
    try {
      if (!fs.existsSync(manifestPath)) {
        log(`building the Hugging Face reference set into ${path.relative(ROOT, dir)} (a few minutes)`);
        const logFile = `${dir}.build.log`;
        try {
          const { stdout } = await execFileP(
            hfPython(),
            [path.join(HF_SCRIPTS, 'build.py'), '--out', dir, '--llama-cpp', llamaCppSourceDir(), '--llama-ref', llamaRefPath()],
            { maxBuffer: 1 << 28, timeout: 40 * 60_000, encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1', PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1' } },
          );
          fs.writeFileSync(logFile, stdout);
        } catch (e) {
          const err = e as { stdout?: string; stderr?: string; message: string };
          fs.writeFileSync(logFile, `${err.stdout ?? ''}\n${err.stderr ?? ''}`);
          throw new Error(`test/hf/build.py failed (log: ${logFile}): ${(err.stderr || err.stdout || err.message).slice(-4000)}`);
        }
        built = (Date.now() - t0) / 1000;
        // older sets are dead weight (hundreds of MB each)
        const key = path.basename(dir);
        for (const d of fs.readdirSync(HF_CACHE)) {
          const m = /^([0-9a-f]{12})(\.build\.log)?$/.exec(d);
          if (m && m[1] !== key) fs.rmSync(path.join(HF_CACHE, d), { recursive: true, force: true });
        }
      }
    } finally {
      fs.rmSync(lock, { recursive: true, force: true });
    }
  }
  const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as HfManifest;
  return {
    dir,
    manifest,
    gguf: (t) => path.join(dir, t === '601_f32' ? manifest.gguf601 : manifest.ggufs[t]),
    adapter: (n) => path.join(dir, n),
    lora: (n) => path.join(dir, manifest.lora_ggufs[n]),
    builtNowSeconds: built,
  };
}
