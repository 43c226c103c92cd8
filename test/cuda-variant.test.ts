/**
 * The CUDA variant on a machine without a GPU (issue 4): the CUDA .node (variants/cuda/build/Release/nla_ar_cuda.node,
 * built by `npm run build:cuda`) must load, report no device cleanly, link cudart statically, and the run-time
 * choice must fall back to the CPU variant. Also exercises the CPU-side parts of scripts/gpu-check.sh.
 *
 * Skips (with a message) when the CUDA binary has not been built; nothing here needs a GPU. On a machine that
 * has one, the "no device" expectations are skipped instead (gpu-check.sh covers that case).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadNative, type NativeBinding } from '../src/native';
import { NlaError } from '../src/errors';
import { tinyModel } from './helpers/models';

const ROOT = path.resolve(__dirname, '..');
const CUDA_NODE = path.join(ROOT, 'variants', 'cuda', 'build', 'Release', 'nla_ar_cuda.node');
const haveCuda = fs.existsSync(CUDA_NODE);
if (!haveCuda) {
  // eslint-disable-next-line no-console
  console.warn(`cuda-variant tests skipped: ${path.relative(ROOT, CUDA_NODE)} is absent (build it with \`npm run build:cuda\`)`);
}
const describeCuda = haveCuda ? describe : describe.skip;

function cudaBinding(): NativeBinding {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(CUDA_NODE) as NativeBinding;
}

describeCuda('CUDA variant without a GPU', () => {
  const hasGpu = haveCuda && cudaBinding().cudaDeviceCount() > 0;
  const noGpuTest = hasGpu ? test.skip : test;

  test('the CUDA .node loads and says it is the CUDA variant', () => {
    const b = cudaBinding();
    expect(b.variant).toBe('cuda');
    expect(typeof b.cudaDeviceCount).toBe('function');
    expect(typeof b.openModel).toBe('function');
  });

  noGpuTest('cudaDeviceCount() reports no device as 0 or a negative cudaError (35: no driver, 100: no device)', () => {
    const n = cudaBinding().cudaDeviceCount();
    expect(Number.isInteger(n)).toBe(true);
    expect(n).toBeLessThanOrEqual(0);
    // Asking twice must give the same answer (no sticky state, no crash).
    expect(cudaBinding().cudaDeviceCount()).toBe(n);
  });

  test('it links the CUDA runtime statically (ldd lists no libcudart / libcublas)', () => {
    const out = execFileSync('ldd', [CUDA_NODE], { encoding: 'utf8' });
    expect(out).not.toMatch(/libcudart|libcublas|libcuda\.so/);
    expect(out).toMatch(/libc\.so/);
  });

  test('it exports only the Node-API entry points (no cudart symbols leak)', () => {
    const out = execFileSync('nm', ['-D', '--defined-only', CUDA_NODE], { encoding: 'utf8' });
    const text = out.split('\n').filter((l) => / T /.test(l)).map((l) => l.split(' ').pop());
    expect(text).toContain('napi_register_module_v1');
    expect(text.filter((s) => s && /^cuda|^__cuda/.test(s))).toEqual([]);
  });

  noGpuTest("loadNative('auto') falls back to the CPU variant and says why (mentioning cuda)", () => {
    const r = loadNative('auto');
    expect(r.backend).toBe('cpu');
    expect(r.binding.variant).toBe('cpu');
    expect(r.reasons.join('; ')).toMatch(/cuda/i);
  });

  noGpuTest("loadNative('cuda') throws ERR_NLA_NO_CUDA", () => {
    let err: unknown;
    try {
      loadNative('cuda');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NlaError);
    expect((err as NlaError).code).toBe('ERR_NLA_NO_CUDA');
    expect((err as Error).message).toMatch(/cuda/i);
  });

  noGpuTest("opening a model with device 'cuda' on the CUDA binary rejects with ERR_NLA_NO_CUDA (no crash)", async () => {
    const model = tinyModel('f32-full');
    let err: unknown;
    try {
      const m = await cudaBinding().openModel(model.path, { device: 'cuda' });
      m.close();
    } catch (e) {
      err = e;
    }
    expect((err as { code?: string })?.code).toBe('ERR_NLA_NO_CUDA');
  });

  test('the CUDA binary runs the CPU backend like the CPU binary does (same block outputs)', async () => {
    const model = tinyModel('f32-full');
    const tokens = Int32Array.from([2, 310, 555, 1200, 999, 401, 3000, 2048]);
    const run = async (b: NativeBinding) => {
      const m = await b.openModel(model.path, { device: 'cpu', threads: 2 });
      try {
        const caps = await m.forward([tokens], { captureLayers: [model.config.nLayer - 1], allTokens: true });
        return caps[0][0].data;
      } finally {
        m.close();
      }
    };
    const a = await run(cudaBinding());
    const b = await run(loadNative('cpu').binding);
    expect(Array.from(a)).toEqual(Array.from(b));
  });
});

describe('scripts/gpu-check.sh (CPU-side parts)', () => {
  const script = path.join(ROOT, 'scripts', 'gpu-check.sh');
  const haveCpuBuild = fs.existsSync(path.join(ROOT, 'build', 'Release', 'nla_ar.node')) && fs.existsSync(path.join(ROOT, 'dist-tools', 'tools', 'synthetic', 'index.js'));
  const run = (args: string[], timeout = 60_000) =>
    spawnSync('bash', [script, ...args], { cwd: ROOT, encoding: 'utf8', timeout });

  test('rejects unknown arguments and bad option values with status 2', () => {
    let r = run(['--frobnicate']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown argument '--frobnicate'/);
    r = run(['--budget', 'soon']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--budget needs seconds/);
    r = run(['--work']);
    expect(r.status).toBe(2);
  });

  test('--help prints the usage', () => {
    const r = run(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/--dry-run/);
    expect(r.stdout).toMatch(/--cpu-only/);
  });

  test('--dry-run prints the plan, writes the helper scripts and builds nothing', () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'gpu-check-dry-'));
    try {
      const r = run(['--dry-run', '--work', work]);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/plan:/);
      expect(r.stdout).toMatch(/differential CUDA vs CPU/);
      expect(r.stdout).toMatch(/dry run OK/);
      for (const f of ['harness.js', 'hf_reference.py', 'summary.js']) expect(fs.existsSync(path.join(work, f))).toBe(true);
      expect(fs.existsSync(path.join(work, 'results.jsonl'))).toBe(false);
      // The helper scripts are at least syntactically valid.
      expect(spawnSync(process.execPath, ['--check', path.join(work, 'harness.js')]).status).toBe(0);
      expect(spawnSync(process.execPath, ['--check', path.join(work, 'summary.js')]).status).toBe(0);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });

  (haveCpuBuild ? test : test.skip)(
    '--cpu-only runs the harness with the CPU backend as the candidate (rel-RMS 0) and prints one summary table',
    () => {
      const work = path.join(ROOT, '.cache', 'gpu-check-test');
      fs.rmSync(path.join(work, 'results.jsonl'), { force: true });
      const r = run(['--cpu-only', '--skip-build', '--work', work], 300_000);
      const text = r.stdout + r.stderr;
      expect(text).toMatch(/=== gpu-check summary \(mode cpu/);
      expect(r.status).toBe(0);
      const rows = fs.readFileSync(path.join(work, 'results.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      const diffs = rows.filter((x) => x.section === 'diff');
      expect(diffs.length).toBeGreaterThanOrEqual(13);
      for (const d of diffs) {
        if (d.status === 'SKIP') continue;
        expect({ name: d.name, status: d.status }).toEqual({ name: d.name, status: 'PASS' });
        expect(d.worstRel).toBe(0);
      }
      expect(rows.some((x) => x.section === 'time' && x.status === 'OK')).toBe(true);
      // The Python reference script at least parses and its gguf-py import works (torch is not needed for that).
      const py = rows.find((x) => x.section === 'python');
      if (py) expect(['OK', 'SKIP', 'FAIL']).toContain(py.status);
    },
    300_000,
  );
});
