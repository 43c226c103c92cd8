/**
 * binding.gyp, the node-gyp mirror of the CMake CPU build: `node-gyp configure` (npm's bundled node-gyp, local
 * headers, a few seconds) must accept it and list exactly the sources CMake compiled, with the same defines. The
 * full node-gyp build takes minutes on two cores, so it runs only with NLA_TEST_NODE_GYP_BUILD=1; it must then
 * load and compute exactly what the CMake build computes (docs/verification.md records that run).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT } from './helpers/build';

function findNodeGyp(): string | null {
  const npmCli = spawnSync('npm', ['root', '-g'], { encoding: 'utf8' }).stdout?.trim();
  for (const p of [npmCli && path.join(npmCli, 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'), path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')])
    if (p && fs.existsSync(p)) return p;
  return null;
}
const nodeGyp = findNodeGyp();
// offline, node-gyp needs the headers on disk (nodejs.org is unreachable here)
const nodedir = ['/usr', path.join(path.dirname(process.execPath), '..')].find((d) => fs.existsSync(path.join(d, 'include', 'node', 'node_api.h')));
const can = nodeGyp && nodedir;
if (!can) console.warn(`binding-gyp tests skipped: ${nodeGyp ? 'no local Node headers (include/node/node_api.h)' : "npm's node-gyp not found"}`);

/** The .cc files CMake compiled, from its object files (any generator). */
function cmakeSources(): string[] {
  const out: string[] = [];
  for (const target of ['nla_core.dir', 'nla_ar.dir']) {
    const base = path.join(ROOT, 'build', 'CMakeFiles', target);
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name.endsWith('.cc.o')) out.push(path.relative(base, p).replace(/\.o$/, '').split(path.sep).join('/'));
      }
    };
    if (fs.existsSync(base)) walk(base);
  }
  return out.sort();
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nla-gyp-'));
  // what the tarball ships for a source build: native/, binding.gyp, the source lister, package.json
  fs.cpSync(path.join(ROOT, 'native'), path.join(dir, 'native'), { recursive: true });
  for (const f of ['binding.gyp', 'package.json', 'scripts/gyp-sources.js']) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.copyFileSync(path.join(ROOT, f), path.join(dir, f));
  }
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

(can ? test : test.skip)('node-gyp configure accepts binding.gyp; it compiles the same sources as CMake, with its defines', () => {
  const r = spawnSync(process.execPath, [nodeGyp!, 'configure', `--nodedir=${nodedir}`], { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`node-gyp configure failed:\n${r.stdout}\n${r.stderr}`);
  const mk = fs.readFileSync(path.join(dir, 'build', 'nla_ar.target.mk'), 'utf8');
  const gypSources = [...mk.matchAll(/\$\(obj\)\.target\/\$\(TARGET\)\/(native\/\S+)\.o/g)].map((m) => `${m[1]}.cc`).sort();
  const fromCmake = cmakeSources();
  expect(fromCmake.length).toBeGreaterThan(10); // `npm run build` ran
  expect(gypSources).toEqual(fromCmake);
  for (const d of ['NDEBUG', 'NAPI_VERSION=8', 'NODE_ADDON_API_CPP_EXCEPTIONS', 'NODE_ADDON_API_CPP_EXCEPTIONS_ALL', 'NODE_ADDON_API_DISABLE_DEPRECATED'])
    expect(mk).toContain(`'-D${d}'`);
  expect(mk).toMatch(/-fexceptions/);
});

(can && process.env.NLA_TEST_NODE_GYP_BUILD === '1' ? test : test.skip)('node-gyp build: the .node loads and computes bit for bit what the CMake build computes', async () => {
  const r = spawnSync(process.execPath, [nodeGyp!, 'build', `--nodedir=${nodedir}`, '-j', String(os.cpus().length)], { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`node-gyp build failed:\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`);
  const run = (file: string) =>
    spawnSync(process.execPath, ['-e', `
      const b = require(${JSON.stringify(file)});
      (async () => {
        const m = await b.openModel(${JSON.stringify(path.join(ROOT, 'demo', 'model.gguf'))}, { device: 'cpu' });
        const ids = m.tokenize('Summary of the following text: <text>tides</text> <summary>', true, true);
        const d = (await m.forward([ids], { lastLayer: 17, captureLayers: [17], allTokens: false }))[0][0].data;
        console.log(b.variant + ' ' + Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('hex'));
        m.close();
      })();`], { encoding: 'utf8' }).stdout.trim();
  const gyp = run(path.join(dir, 'build', 'Release', 'nla_ar.node'));
  expect(gyp.startsWith('cpu ')).toBe(true);
  expect(gyp).toBe(run(path.join(ROOT, 'build', 'Release', 'nla_ar.node')));
}, 900_000);
