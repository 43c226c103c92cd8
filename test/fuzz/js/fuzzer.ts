/**
 * A small coverage-guided mutation fuzzer for the TypeScript targets (targets.ts), in the style of libFuzzer:
 * V8's block coverage (node:inspector, precise coverage) is the feedback, inputs that reach a new coverage
 * pattern join the corpus, and each new input is a stack of byte-level mutations of a corpus entry.
 *
 *   node .cache/fuzz/js/test/fuzz/js/fuzzer.js --target zip --seconds 60 --corpus test/fuzz/corpus/zip \
 *        [--work DIR] [--findings DIR] [--max-len 65536] [--timeout-ms 5000] [--rss-mb 2048] [--seed N]
 *
 * The loop runs on a worker thread; the main thread watches it: an exec that runs longer than --timeout-ms is a
 * hang, a worker that runs out of heap or a process whose RSS exceeds --rss-mb is unbounded memory, and a
 * thrown non-NlaError is a crash. Each finding's input is written to --findings and the process exits 1.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as inspector from 'node:inspector';
import * as path from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

interface Options {
  target: string;
  seconds: number;
  corpus: string[];
  work: string;
  findings: string;
  maxLen: number;
  timeoutMs: number;
  rssMb: number;
  seed: number;
}

interface Stats {
  execs: number;
  corpus: number;
  features: number;
  seconds: number;
}

type Report = { kind: 'stats'; stats: Stats } | { kind: 'crash'; input: Uint8Array; error: string } | { kind: 'done'; stats: Stats };

const SLOT = 1 << 20; // the shared current-input slot (inputs are capped below this)

function parseArgs(argv: string[]): Options {
  const o: Options = { target: '', seconds: 60, corpus: [], work: '', findings: '', maxLen: 65536, timeoutMs: 5000, rssMb: 2048, seed: Date.now() % 2 ** 31 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a} needs a value`);
      return x;
    };
    if (a === '--target') o.target = v();
    else if (a === '--seconds') o.seconds = Number(v());
    else if (a === '--corpus') o.corpus.push(v());
    else if (a === '--work') o.work = v();
    else if (a === '--findings') o.findings = v();
    else if (a === '--max-len') o.maxLen = Math.min(Number(v()), SLOT);
    else if (a === '--timeout-ms') o.timeoutMs = Number(v());
    else if (a === '--rss-mb') o.rssMb = Number(v());
    else if (a === '--seed') o.seed = Number(v());
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.target) throw new Error('--target is required');
  o.work ||= path.join('.cache', 'fuzz', 'work', o.target);
  o.findings ||= path.join('.cache', 'fuzz', 'findings', o.target);
  return o;
}

function saveFinding(o: Options, kind: string, input: Uint8Array, detail: string): string {
  fs.mkdirSync(o.findings, { recursive: true });
  const file = path.join(o.findings, `${kind}-${createHash('sha1').update(input).digest('hex')}`);
  fs.writeFileSync(file, input);
  console.error(`fuzz ${o.target}: ${kind.toUpperCase()}: ${detail}\n  input saved to ${file} (${input.length} bytes)`);
  return file;
}

// ------------------------------------------------------------------------------------------- main thread

function main(): void {
  const o = parseArgs(process.argv.slice(2));
  const shared = new SharedArrayBuffer(8 + SLOT);
  const state = new Int32Array(shared, 0, 2); // [execs, current input length]
  const slot = new Uint8Array(shared, 8);
  const worker = new Worker(__filename, { workerData: { o, shared }, resourceLimits: { maxOldGenerationSizeMb: 1024 } });
  const current = (): Uint8Array => slot.slice(0, Atomics.load(state, 1));
  let lastExecs = -1;
  let lastChange = Date.now();
  let finished = false;
  const finish = (code: number): void => {
    if (finished) return;
    finished = true;
    clearInterval(watch);
    void worker.terminate().then(() => process.exit(code));
  };
  const watch = setInterval(() => {
    const execs = Atomics.load(state, 0);
    if (execs !== lastExecs) {
      lastExecs = execs;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > o.timeoutMs) {
      saveFinding(o, 'timeout', current(), `one input ran for more than ${o.timeoutMs} ms`);
      finish(1);
    }
    const rssMb = process.memoryUsage.rss() / 2 ** 20;
    if (rssMb > o.rssMb) {
      saveFinding(o, 'oom', current(), `RSS ${rssMb.toFixed(0)} MB exceeds ${o.rssMb} MB`);
      finish(1);
    }
  }, 200);
  worker.on('message', (r: Report) => {
    if (r.kind === 'stats') {
      const s = r.stats;
      console.log(`fuzz ${o.target}: ${s.seconds.toFixed(0)} s, ${s.execs} execs (${(s.execs / Math.max(s.seconds, 1e-3)).toFixed(0)}/s), corpus ${s.corpus}, coverage features ${s.features}`);
    } else if (r.kind === 'crash') {
      saveFinding(o, 'crash', r.input, r.error);
      finish(1);
    } else {
      const s = r.stats;
      console.log(`fuzz ${o.target}: DONE ${s.execs} execs in ${s.seconds.toFixed(0)} s, corpus ${s.corpus}, coverage features ${s.features}, no findings`);
      console.log(JSON.stringify({ target: o.target, ...s }));
      finish(0);
    }
  });
  worker.on('error', (err: Error & { code?: string }) => {
    const kind = err.code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'oom' : 'crash';
    saveFinding(o, kind, current(), `${err.code ?? ''} ${err.stack ?? err.message}`);
    finish(1);
  });
  worker.on('exit', (code) => {
    if (!finished) {
      saveFinding(o, 'crash', current(), `the fuzzing worker exited with ${code}`);
      finish(1);
    }
  });
}

// ------------------------------------------------------------------------------------------- worker thread

class Rng {
  constructor(private s: number) {}
  next(): number {
    // xorshift32
    let x = this.s || 1;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  below(n: number): number {
    return n <= 1 ? 0 : this.next() % n;
  }
}

const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0xff, 0x10, 0x20, 0x40];
const INTERESTING_32 = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];

function mutate(rng: Rng, input: Uint8Array, corpus: Uint8Array[], maxLen: number): Uint8Array {
  let b = Buffer.from(input);
  const rounds = 1 + rng.below(5);
  for (let r = 0; r < rounds; r++) {
    const n = b.length;
    switch (rng.below(10)) {
      case 0: // flip a bit
        if (n) b[rng.below(n)]! ^= 1 << rng.below(8);
        break;
      case 1: // interesting byte
        if (n) b[rng.below(n)] = INTERESTING_8[rng.below(INTERESTING_8.length)]!;
        break;
      case 2: // random byte
        if (n) b[rng.below(n)] = rng.below(256);
        break;
      case 3: // interesting u32 (little-endian), or a size near the input's
        if (n >= 4) {
          const v = rng.below(3) === 0 ? (n + rng.below(16) - 8) >>> 0 : INTERESTING_32[rng.below(INTERESTING_32.length)]!;
          b.writeUInt32LE(v >>> 0, rng.below(n - 3));
        }
        break;
      case 4: // delete a range
        if (n) {
          const at = rng.below(n);
          b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + rng.below(Math.min(64, n - at)))]);
        }
        break;
      case 5: // insert random bytes
        {
          const at = rng.below(n + 1);
          const ins = Buffer.alloc(1 + rng.below(16));
          for (let i = 0; i < ins.length; i++) ins[i] = rng.below(256);
          b = Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]);
        }
        break;
      case 6: // duplicate a chunk
        if (n) {
          const from = rng.below(n);
          const len = 1 + rng.below(Math.min(256, n - from));
          const at = rng.below(n + 1);
          b = Buffer.concat([b.subarray(0, at), b.subarray(from, from + len), b.subarray(at)]);
        }
        break;
      case 7: // copy a chunk over another place
        if (n > 1) {
          const from = rng.below(n);
          const len = 1 + rng.below(Math.min(64, n - from));
          b.copy(b, rng.below(n), from, from + len);
        }
        break;
      case 8: // splice with another corpus entry
        if (corpus.length) {
          const other = corpus[rng.below(corpus.length)]!;
          const cut = rng.below(n + 1);
          const ocut = rng.below(other.length + 1);
          b = Buffer.concat([b.subarray(0, cut), Buffer.from(other.subarray(ocut))]);
        }
        break;
      case 9: // arithmetic on a byte
        if (n) {
          const at = rng.below(n);
          b[at] = (b[at]! + rng.below(70) - 35) & 0xff;
        }
        break;
    }
  }
  return b.length > maxLen ? b.subarray(0, maxLen) : b;
}

function workerMain(o: Options, shared: SharedArrayBuffer): void {
  // Loaded here, not at the top: the main thread only supervises.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { TS_TARGETS } = require('./targets') as typeof import('./targets');
  const target = TS_TARGETS[o.target];
  if (!target) throw new Error(`unknown target ${o.target}; targets: ${Object.keys(TS_TARGETS).join(', ')}`);
  const state = new Int32Array(shared, 0, 2);
  const slot = new Uint8Array(shared, 8);
  const port = parentPort!;
  const session = new inspector.Session();
  session.connect();
  const post = <T>(method: string, params?: object): T => {
    let result: T | undefined;
    let error: Error | null = null;
    session.post(method, params ?? {}, (err, r) => {
      error = err;
      result = r as T;
    });
    if (error) throw error;
    return result as T;
  };
  post('Profiler.enable');
  post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  const srcMarker = `${path.sep}src${path.sep}`;

  /** One feature per called function of src/ and the shape of its block counts (which blocks ran, 0/1/many). */
  const features = new Set<string>();
  const takeNewFeatures = (): number => {
    const cov = post<{ result: { url: string; functions: { ranges: { startOffset: number; endOffset: number; count: number }[] }[] }[] }>('Profiler.takePreciseCoverage');
    let fresh = 0;
    for (const script of cov.result) {
      if (!script.url.includes(srcMarker)) continue;
      for (const fn of script.functions) {
        if (fn.ranges.length === 0 || fn.ranges[0]!.count === 0) continue;
        let sig = `${script.url}:${fn.ranges[0]!.startOffset}`;
        for (const r of fn.ranges) sig += `|${r.startOffset}-${r.endOffset}:${r.count === 0 ? 0 : r.count === 1 ? 1 : r.count < 16 ? 2 : 3}`;
        if (!features.has(sig)) {
          features.add(sig);
          fresh++;
        }
      }
    }
    return fresh;
  };

  const rng = new Rng(o.seed);
  const corpus: Uint8Array[] = [];
  fs.mkdirSync(o.work, { recursive: true });
  const run = (input: Uint8Array): number => {
    slot.set(input.subarray(0, SLOT));
    Atomics.store(state, 1, Math.min(input.length, SLOT));
    try {
      target(Buffer.from(input.buffer, input.byteOffset, input.length));
    } catch (err) {
      port.postMessage({ kind: 'crash', input, error: err instanceof Error ? `${err.name}: ${err.message}\n${err.stack}` : String(err) } satisfies Report);
      throw err;
    }
    Atomics.add(state, 0, 1);
    return takeNewFeatures();
  };
  const seeds: Uint8Array[] = [new Uint8Array(0)];
  for (const dir of [...o.corpus, o.work]) {
    if (!fs.existsSync(dir)) continue;
    for (const f of fs.readdirSync(dir).sort()) {
      const p = path.join(dir, f);
      if (fs.statSync(p).isFile()) seeds.push(fs.readFileSync(p).subarray(0, o.maxLen));
    }
  }
  for (const s of seeds) if (run(s) > 0 || corpus.length === 0) corpus.push(s);

  const start = Date.now();
  const stats = (): Stats => ({ execs: Atomics.load(state, 0), corpus: corpus.length, features: features.size, seconds: (Date.now() - start) / 1000 });
  let lastReport = start;
  while (Date.now() - start < o.seconds * 1000) {
    const input = mutate(rng, corpus[rng.below(corpus.length)]!, corpus, o.maxLen);
    if (run(input) > 0) {
      corpus.push(input);
      fs.writeFileSync(path.join(o.work, createHash('sha1').update(input).digest('hex')), input);
    }
    if (Date.now() - lastReport > 10_000) {
      lastReport = Date.now();
      port.postMessage({ kind: 'stats', stats: stats() } satisfies Report);
    }
  }
  port.postMessage({ kind: 'done', stats: stats() } satisfies Report);
}

if (isMainThread) main();
else {
  const { o, shared } = workerData as { o: Options; shared: SharedArrayBuffer };
  workerMain(o, shared);
}
