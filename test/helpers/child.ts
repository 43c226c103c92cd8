/**
 * Runs a script in a child Node process against the compiled package (lib/), so that a crash (SIGSEGV, SIGBUS,
 * a V8 abort) or a hang fails one test instead of killing the jest worker. The script prints one JSON line per
 * result; the helper returns them parsed, with how the child ended.
 */
import { spawn } from 'node:child_process';
import { ensureLib, LIB } from './build';

export interface ChildResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  /** Every stdout line that parses as JSON. */
  lines: unknown[];
  wallMs: number;
}

/**
 * `body` runs inside `(async () => { ... })()` with `nla` (the package), `fs`, `path` and `emit(x)` (prints x as a
 * JSON line) in scope, and `catchCode(fn)` (awaits fn, returns 'ok' or the error's code).
 */
export function runChild(body: string, options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; args?: string[] } = {}): Promise<ChildResult> {
  ensureLib();
  const script = `
    const nla = require(${JSON.stringify(LIB)});
    const fs = require('node:fs');
    const path = require('node:path');
    const emit = (x) => process.stdout.write(JSON.stringify(x) + '\\n');
    const catchCode = async (fn) => { try { await fn(); return 'ok'; } catch (e) { return e && e.code ? e.code : 'THROWN:' + String(e); } };
    (async () => { ${body} })().catch((e) => { emit({ uncaught: String(e && e.stack || e) }); process.exitCode = 3; });
  `;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...(options.args ?? []), '-e', script], {
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      const lines: unknown[] = [];
      for (const l of stdout.split('\n')) {
        if (!l.trim()) continue;
        try {
          lines.push(JSON.parse(l));
        } catch {
          /* not a result line */
        }
      }
      resolve({ status, signal, timedOut, stdout, stderr, lines, wallMs: Date.now() - started });
    });
  });
}

/** A message that says how a child that should have exited 0 ended. */
export function describeExit(r: ChildResult): string {
  const how = r.timedOut ? `hung (killed after ${r.wallMs} ms)` : r.signal ? `died of ${r.signal}` : `exited with ${r.status}`;
  return `the child process ${how}\nstdout:\n${r.stdout.slice(-3000)}\nstderr:\n${r.stderr.slice(-3000)}`;
}

/** Fails unless the child exited 0 on its own. */
export function expectSurvived(r: ChildResult): void {
  if (r.timedOut || r.signal !== null || r.status !== 0) throw new Error(describeExit(r));
}
