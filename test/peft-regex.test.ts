/**
 * The PEFT pattern matcher (native/adapters/peft_regex.cc) against Python's `re`, the engine PEFT itself uses:
 * thousands of random patterns from the supported syntax (literals, escapes, classes, groups, alternation, every
 * quantifier and its lazy form, anchors) and module-like texts, in both of PEFT's modes — re.fullmatch(p, t)
 * (target_modules) and re.match(rf"(.*\.)?({p})$", t) (rank_pattern / alpha_pattern keys). Every answer must be
 * Python's, including which patterns are errors. Skipped without python3.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const python = spawnSync('python3', ['-c', 'import re, sys; print(sys.version_info[0])'], { encoding: 'utf8' });
const havePython = python.status === 0 && python.stdout.trim() === '3';
if (!havePython) console.warn('python3 not found: the matcher is not compared with Python re');

class Rng {
  constructor(private s: number) {}
  next(): number {
    this.s = (Math.imul(this.s, 1664525) + 1013904223) >>> 0;
    return this.s / 2 ** 32;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
}

const ATOMS = ['a', 'b', 'q', '_', '0', '\\.', '.', '\\d', '\\w', '\\s', '\\W', '[a-c]', '[^q_]', '[\\d.]', '[]a]', '[-a]', '[a-]', '\\-', '{', '}', '\\x61', '[\\w-]'];
const QUANTS = ['', '', '', '*', '+', '?', '{2}', '{1,3}', '{,2}', '{2,}', '*?', '+?', '??', '{0}', '{1,1}'];

/**
 * A random pattern. Quantified groups never contain quantifiers themselves (star height 1): Python's backtracking
 * engine takes exponential time on nested quantifiers, which would hang the reference, not the code under test.
 */
function pattern(rng: Rng, depth: number): { p: string; quantified: boolean } {
  const alts: string[] = [];
  let quantified = false;
  const nAlts = depth > 2 ? 1 : 1 + Math.floor(rng.next() * 2.2);
  for (let a = 0; a < nAlts; a++) {
    let s = '';
    const n = Math.floor(rng.next() * 4);
    for (let i = 0; i < n; i++) {
      const r = rng.next();
      let atom: string;
      let inner = false;
      if (r < 0.22 && depth < 3) {
        const g = pattern(rng, depth + 1);
        atom = r < 0.15 ? `(${g.p})` : `(?:${g.p})`;
        inner = g.quantified;
      } else if (r < 0.25) atom = rng.pick(['^', '$', '\\b', '\\B', '\\A', '\\Z']);
      else atom = rng.pick(ATOMS);
      const q = inner ? '' : rng.pick(QUANTS);
      if (q || inner) quantified = true;
      s += atom + q;
    }
    alts.push(s);
  }
  return { p: alts.join('|'), quantified };
}

const MODULES = ['model.language_model.layers.3.self_attn.q_proj', 'model.layers.12.mlp.up_proj', 'q_proj', 'a.b', 'self_attn.k_proj'];

function texts(rng: Rng): string[] {
  const out = [rng.pick(MODULES), ''];
  for (let i = 0; i < 8; i++) {
    let t = '';
    const n = Math.floor(rng.next() * 7);
    for (let k = 0; k < n; k++) t += rng.pick(['a', 'b', 'q', '_', '0', '.', ' ', '-', 'x', '{', '}', 'aa', 'ab.']);
    out.push(t);
  }
  return out;
}

const PY = `
import json, re, sys, warnings
warnings.simplefilter('ignore')
out = []
for line in sys.stdin:
    q = json.loads(line)
    p = q['p'] if q['m'] == 'full' else r'(.*\\.)?(' + q['p'] + r')$'
    try:
        rx = re.compile(p)
    except re.error:
        out.append('E'); continue
    m = rx.fullmatch(q['t']) if q['m'] == 'full' else rx.match(q['t'])
    out.append('1' if m else '0')
sys.stdout.write('\\n'.join(out) + '\\n')
`;

(havePython ? test : test.skip)('2000 random patterns x 10 texts x 2 modes: the same answers (and the same errors) as Python re', () => {
  const build = spawnSync('bash', [path.join(ROOT, 'scripts', 'fuzz.sh'), 'replay-build'], { encoding: 'utf8', timeout: 600_000 });
  if (build.status !== 0) throw new Error(`scripts/fuzz.sh replay-build failed:\n${build.stderr}`);
  const rng = new Rng(20240611);
  const queries: { m: 'full' | 'key'; p: string; t: string }[] = [];
  for (let i = 0; i < 2000; i++) {
    const { p } = pattern(rng, 0);
    for (const t of texts(rng)) for (const m of ['full', 'key'] as const) queries.push({ m, p, t });
  }
  const input = queries.map((q) => JSON.stringify(q)).join('\n') + '\n';
  const py = spawnSync('python3', ['-c', PY], { input, encoding: 'utf8', maxBuffer: 64 << 20, timeout: 120_000 });
  if (py.status !== 0) throw new Error(`python3 failed: ${py.stderr}`);
  const ours = spawnSync(path.join(ROOT, '.cache', 'fuzz', 'replay', 'regex_probe'), [], { input, encoding: 'utf8', maxBuffer: 64 << 20, timeout: 120_000 });
  if (ours.status !== 0) throw new Error(`regex_probe failed: ${ours.stderr}`);
  const a = py.stdout.trim().split('\n');
  const b = ours.stdout.trim().split('\n');
  expect([a.length, b.length]).toEqual([queries.length, queries.length]);
  const differ = queries.map((q, i) => ({ ...q, python: a[i], ours: b[i] })).filter((x) => x.python !== x.ours);
  expect(differ.slice(0, 10)).toEqual([]);
  // the corpus is not trivial: both outcomes and errors occur
  const counts = { match: a.filter((x) => x === '1').length, noMatch: a.filter((x) => x === '0').length, error: a.filter((x) => x === 'E').length };
  expect(Math.min(counts.match, counts.noMatch, counts.error)).toBeGreaterThan(100);
});
