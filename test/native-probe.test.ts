/**
 * Choosing the native binary safely (src/native.ts): the CUDA variant is loaded in a child process before the
 * host touches it, so a broken binary or driver can only kill the child. Exercised with deliberately broken
 * CUDA "variants" in a temp folder that NLA_AR_CUDA_DIR points to: a truncated copy of the real addon, a shared
 * object that aborts while it is loaded, and a valid addon that is not the CUDA variant. Also: the CPU load error
 * lists what was tried and what to do, and `nla-ar inspect` reports all of it.
 *
 * Every scenario runs in a fresh Node process on lib/ (the load result is cached per process).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureLib, LIB, ROOT } from './helpers/build';

const ADDON = path.join(ROOT, 'build', 'Release', 'nla_ar.node');
const TAG = `${process.platform}-${process.arch}`;
let tmp: string;

/** A fake CUDA variant folder holding `file` where node-gyp-build looks for prebuilds. */
function variant(name: string, write: (file: string) => void): string {
  const dir = path.join(tmp, name);
  const file = path.join(dir, 'prebuilds', TAG, 'nla-ar.glibc.node');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  write(file);
  return dir;
}

/** Runs `code` in a new Node process with lib/native.js as `n`; returns its JSON output. */
function inChild(code: string, env: Record<string, string>): { status: number | null; signal: string | null; out: unknown; stderr: string } {
  const r = spawnSync(process.execPath, ['-e', `const n = require(${JSON.stringify(path.join(LIB, 'native.js'))});\n${code}`], {
    encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000,
  });
  let out: unknown;
  try {
    out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
  } catch {
    out = r.stdout;
  }
  return { status: r.status, signal: r.signal, out, stderr: r.stderr };
}

const CHOOSE = `
const auto = n.loadNative('auto');
let cuda;
try { n.loadNative('cuda'); cuda = 'loaded'; } catch (e) { cuda = { code: e.code, message: e.message }; }
console.log(JSON.stringify({ backend: auto.backend, variant: auto.binding.variant, reasons: auto.reasons, probe: n.probeCuda(), cuda, alive: true }));
`;

let truncated: string, aborting: string, notCuda: string;

beforeAll(() => {
  ensureLib();
  if (!fs.existsSync(ADDON)) throw new Error(`${ADDON} is missing: run \`npm run build\` first`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nla-probe-'));
  truncated = variant('truncated', (f) => fs.writeFileSync(f, fs.readFileSync(ADDON).subarray(0, 64 * 1024)));
  aborting = variant('aborting', (f) => {
    const src = path.join(tmp, 'abort_on_load.cc');
    fs.writeFileSync(src, '#include <cstdlib>\n__attribute__((constructor)) static void die() { std::abort(); }\n');
    const cc = spawnSync(process.env.CXX ?? 'c++', ['-shared', '-fPIC', '-o', f, src], { encoding: 'utf8' });
    if (cc.status !== 0) throw new Error(`could not compile the aborting library: ${cc.stderr}`);
  });
  notCuda = variant('cpu-as-cuda', (f) => fs.copyFileSync(ADDON, f));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('a truncated CUDA binary is caught in the probe process: the host survives and uses the CPU variant', () => {
  const r = inChild(CHOOSE, { NLA_AR_CUDA_DIR: truncated });
  expect(r.status).toBe(0);
  const out = r.out as { backend: string; variant: string; reasons: string[]; probe: { ok: boolean; file: string; error: string }; cuda: { code: string; message: string }; alive: boolean };
  expect(out.alive).toBe(true);
  expect({ backend: out.backend, variant: out.variant, ok: out.probe.ok }).toEqual({ backend: 'cpu', variant: 'cpu', ok: false });
  expect(out.probe.file).toBe(path.join(truncated, 'prebuilds', TAG, 'nla-ar.glibc.node'));
  // dlopen of a cut-off ELF either fails cleanly or faults (SIGBUS) when it touches the missing pages
  expect(out.probe.error).toMatch(/crashed the probe process \(it was killed by SIG\w+\)|does not load/);
  expect(out.reasons.join('; ')).toContain(out.probe.error);
  expect(out.cuda.code).toBe('ERR_NLA_NO_CUDA');
  expect(out.cuda.message).toContain(out.probe.file);
});

test('a binary that aborts while loading kills only the probe process (SIGABRT), never the host', () => {
  // loaded in-process, the same file takes the whole process down: that is what the probe prevents
  const direct = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(aborting, 'prebuilds', TAG, 'nla-ar.glibc.node'))})`], { encoding: 'utf8' });
  expect(direct.signal).toBe('SIGABRT');
  const r = inChild(CHOOSE, { NLA_AR_CUDA_DIR: aborting });
  expect(r.status).toBe(0);
  const out = r.out as { backend: string; probe: { crashed: boolean; error: string }; cuda: { code: string; message: string } };
  expect(out.backend).toBe('cpu');
  expect(out.probe.crashed).toBe(true);
  expect(out.probe.error).toMatch(/crashed the probe process \(it was killed by SIGABRT\)/);
  expect(out.cuda.code).toBe('ERR_NLA_NO_CUDA');
  expect(out.cuda.message).toMatch(/driver >= 580.*NLA_AR_BUILD_CUDA=1 npm rebuild nla-ar.*nla-ar inspect/);
});

test('a working addon that is not the CUDA variant is refused by the probe', () => {
  const r = inChild(CHOOSE, { NLA_AR_CUDA_DIR: notCuda });
  const out = r.out as { backend: string; probe: { ok: boolean; error: string } };
  expect(out.backend).toBe('cpu');
  expect(out.probe.error).toMatch(/not the CUDA variant \(variant = cpu\)/);
});

test('no CUDA binary at all: "no CUDA binary", no probe process needed', () => {
  const r = inChild(CHOOSE, { NLA_AR_CUDA_DIR: path.join(tmp, 'empty') });
  const out = r.out as { backend: string; reasons: string[]; probe: { ms: number; error: string } };
  expect(out.backend).toBe('cpu');
  expect(out.reasons[0]).toMatch(/^cuda: no CUDA binary \(No native build was found/);
});

test('when the CPU binary is missing, ERR_NLA_NATIVE_LOAD lists the folders tried and the fixes', () => {
  // the package as installed without any binary: lib/ and package.json, no build/, no prebuilds/
  const pkg = path.join(tmp, 'pkg');
  fs.cpSync(LIB, path.join(pkg, 'lib'), { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(pkg, 'package.json'));
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(pkg, 'node_modules'));
  const r = spawnSync(process.execPath, ['-e', `
    const { Tokenizer } = require(${JSON.stringify(path.join(pkg, 'lib'))});
    Tokenizer.fromGGUF(${JSON.stringify(path.join(ROOT, 'demo', 'model.gguf'))}).then(() => console.log('loaded?!'), (e) => console.log(JSON.stringify({ code: e.code, message: e.message })));
  `], { encoding: 'utf8', env: { ...process.env, NLA_AR_CUDA_DIR: path.join(tmp, 'empty') } });
  const out = JSON.parse(r.stdout.trim()) as { code: string; message: string };
  expect(out.code).toBe('ERR_NLA_NATIVE_LOAD');
  expect(out.message).toContain(`${path.join(pkg, 'build', 'Release')}: absent`);
  expect(out.message).toContain(`${path.join(pkg, 'prebuilds', TAG)}: absent`);
  for (const fix of ['npm rebuild nla-ar', '--build-from-source', 'NLA_AR_SKIP_BUILD', 'npm install-scripts approve nla-ar', 'nla-ar inspect'])
    expect(out.message).toContain(fix);
});

test('nla-ar inspect prints the platform, both variants, the probe result and the CPU kernels', () => {
  const r = spawnSync(process.execPath, [path.join(LIB, 'cli.js'), 'inspect'], { encoding: 'utf8', env: { ...process.env, NLA_AR_CUDA_DIR: aborting } });
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(new RegExp(`^platform   ${TAG}, (glibc [\\d.]+|musl).*Node v\\d+.*N-API \\d+`, 'm'));
  expect(r.stdout).toMatch(/^cpu        .*\.node$/m);
  expect(r.stdout).toMatch(/kernels: (avx512vnni|avx2|scalar)$/m);
  expect(r.stdout).toMatch(/probe \(child process, \d+ ms\): CRASHED: .*SIGABRT/);
  expect(r.stdout).toMatch(/^auto       cpu \(cuda: /m);
  expect(r.stdout).toContain(`NLA_AR_CUDA_DIR=${aborting}`);
  const j = spawnSync(process.execPath, [path.join(LIB, 'cli.js'), 'inspect', '--json'], { encoding: 'utf8', env: { ...process.env, NLA_AR_CUDA_DIR: aborting } });
  const rep = JSON.parse(j.stdout) as { cpu: { kernels: string }; cuda: { probe: { crashed: boolean } }; auto: { backend: string } };
  expect(rep.cuda.probe.crashed).toBe(true);
  expect(rep.auto.backend).toBe('cpu');
  expect(typeof rep.cpu.kernels).toBe('string');
});
