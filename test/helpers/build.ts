/**
 * lib/ (the compiled package) and demo/ (the shipped demo files) for tests that spawn `node lib/cli.js`, pack the
 * package or require it from a child process. `npm test` builds both in pretest; a standalone
 * `npx jest test/<file>` makes them here when they are missing or out of date. A lock directory keeps parallel
 * jest workers from running tsc at the same time.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEMO_VERSION } from '../../tools/demo';

export const ROOT = path.resolve(__dirname, '..', '..');
export const LIB = path.join(ROOT, 'lib');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

function libUpToDate(): boolean {
  const marker = path.join(LIB, 'cli.js');
  if (!fs.existsSync(marker) || !fs.existsSync(path.join(LIB, 'index.js')) || !fs.existsSync(path.join(LIB, 'index.mjs'))) return false;
  return fs.statSync(marker).mtimeMs >= newestMtime(path.join(ROOT, 'src'));
}

function demoUpToDate(): boolean {
  try {
    return (JSON.parse(fs.readFileSync(path.join(ROOT, 'demo', 'manifest.json'), 'utf8')) as { version: string }).version === DEMO_VERSION;
  } catch {
    return false;
  }
}

const upToDate = () => libUpToDate() && demoUpToDate();

function tsc(project: string): void {
  const r = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(ROOT, project)], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tsc -p ${project} failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
}

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Makes sure lib/ holds a build of the current src/ and demo/ the current demo files (building them if needed). */
export function ensureLib(): void {
  if (upToDate()) return;
  const lock = path.join(ROOT, '.cache', 'lib-build.lock');
  fs.mkdirSync(path.dirname(lock), { recursive: true });
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch {
      // another worker is compiling; a lock older than 2 minutes was left by a killed run
      try {
        if (Date.now() - fs.statSync(lock).mtimeMs > 120_000) fs.rmSync(lock, { recursive: true, force: true });
      } catch {
        /* gone already */
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock}`);
      sleep(200);
    }
  }
  try {
    if (!libUpToDate()) {
      tsc('tsconfig.json');
      // the ESM entry (lib/index.mjs), as `npm run build:ts` makes it
      const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build-esm.js')], { cwd: ROOT, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`build-esm failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
    }
    if (!demoUpToDate()) {
      tsc('tsconfig.tools.json');
      const r = spawnSync(process.execPath, [path.join(ROOT, 'dist-tools', 'tools', 'make-demo.js')], { cwd: ROOT, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`make-demo failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
    }
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}
