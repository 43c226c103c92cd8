/**
 * Real processes for the serving tests: `node lib/cli.js serve|eval|worker …` spawned as a user would run them,
 * on 127.0.0.1 only, with their output collected; and a private redis-server on a free loopback port in its own
 * temp dir (Debian's redis-server, installed by scripts/ci-redis.sh).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { LIB, ROOT } from './build';

export const CLI = path.join(LIB, 'cli.js');

export interface Proc {
  proc: ChildProcess;
  out(): string;
  err(): string;
  /** Resolves with the exit code (or the signal's name) once the process has exited. */
  exited: Promise<number | string>;
  /** Resolves when stderr has matched `re` (rejects if the process exits first or after `ms`). */
  waitFor(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
  kill(sig?: NodeJS.Signals): void;
}

export function spawnCli(args: string[], env: Record<string, string> = {}): Proc {
  const proc = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  const waiters: { re: RegExp; resolve(m: RegExpMatchArray): void; reject(e: Error): void }[] = [];
  const check = () => {
    for (const w of [...waiters]) {
      const m = err.match(w.re);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  proc.stderr!.on('data', (c: Buffer) => {
    err += c.toString('utf8');
    check();
  });
  const exited = new Promise<number | string>((resolve) => {
    proc.on('exit', (code, signal) => {
      resolve(code ?? signal ?? 'unknown');
      // let the stdio streams flush before failing waiters
      setImmediate(() => {
        for (const w of waiters.splice(0)) w.reject(new Error(`process exited (${code ?? signal}) before ${w.re}\n--- stderr\n${err}\n--- stdout\n${out}`));
      });
    });
  });
  return {
    proc,
    out: () => out,
    err: () => err,
    exited,
    waitFor(re, ms = 60_000) {
      const m = err.match(re);
      if (m) return Promise.resolve(m);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`timed out waiting for ${re}\n--- stderr\n${err}`)), ms);
        waiters.push({ re, resolve: (x) => (clearTimeout(t), resolve(x)), reject: (e) => (clearTimeout(t), reject(e)) });
      });
    },
    kill(sig = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
    },
  };
}

export interface Server extends Proc {
  url: string;
}

/** Starts `nla-ar serve --port 0 …` and resolves once it listens (not necessarily loaded). */
export async function startServer(args: string[], env: Record<string, string> = {}): Promise<Server> {
  const p = spawnCli(['serve', '--port', '0', '--device', 'cpu', '--threads', '1', ...args], env);
  const m = await p.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  return Object.assign(p, { url: m[1] });
}

/** Polls /health until 200. */
export async function waitHealthy(url: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const r = await fetch(`${url}/health`);
      if (r.status === 200) return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error(`${url} did not become healthy`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function stopProc(p: Proc, ms = 20_000): Promise<number | string> {
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), ms);
  const code = await p.exited;
  clearTimeout(t);
  return code;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export const REDIS_SERVER = (() => {
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
})();

export interface RedisInstance {
  url: string;
  stop(): Promise<void>;
}

/** A redis-server of our own: loopback only, a free port, no persistence, in a temp dir removed afterwards. */
export async function startRedis(): Promise<RedisInstance> {
  if (!REDIS_SERVER) throw new Error('redis-server is not installed (scripts/ci-redis.sh installs it)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nla-redis-'));
  const port = await freePort();
  const proc = spawn(REDIS_SERVER, ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--save', '', '--appendonly', 'no', '--protected-mode', 'yes', '--daemonize', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  proc.stdout.on('data', (c: Buffer) => (log += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (log += c.toString()));
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (/Ready to accept connections/.test(log)) break;
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const exited = new Promise<void>((r) => proc.on('exit', () => r()));
  return {
    url: `redis://127.0.0.1:${port}/0`,
    async stop() {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
