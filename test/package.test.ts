/**
 * The package as users get it: `npm pack`, installed into an empty project from the tarball, then used from
 * CommonJS (`require('nla-ar')`), ESM (`import { Reconstructor, NlaError } from 'nla-ar'`), TypeScript (the
 * shipped .d.ts) and the `nla-ar` bin. When `npm run prebuildify` has made the prebuilds (CI does), the tarball
 * carries them and the installed package must pick the right variant by itself; otherwise the locally built
 * build/Release/nla_ar.node is copied into the installed package (where node-gyp-build looks first) as a stand-in.
 *
 * Dependencies come from the npm registry (`--ignore-scripts`: nothing is compiled). When the registry cannot
 * be reached the install tests are skipped with a message; any other install failure fails them.
 */
import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Reconstructor } from '../src';
import { ensureLib, ROOT } from './helpers/build';
import { tinyModel } from './helpers/models';
import { demoModelConfig } from '../tools/demo';

const execFileP = promisify(execFile);
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const ADDON = path.join(ROOT, 'build', 'Release', 'nla_ar.node');
const PREBUILT_CPU = fs.existsSync(path.join(ROOT, 'prebuilds', 'linux-x64', 'nla-ar.glibc.node'));
const PREBUILT_CUDA = fs.existsSync(path.join(ROOT, 'variants', 'cuda', 'prebuilds', 'linux-x64', 'nla-ar.glibc.node'));
if (!PREBUILT_CPU) console.warn('package.test: no prebuilds (run `npm run prebuildify`): the installed package uses the local build instead');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };

function registryReachable(): boolean {
  const r = spawnSync(NPM, ['ping'], { cwd: os.tmpdir(), encoding: 'utf8', timeout: 20_000 });
  return r.status === 0;
}
const online = registryReachable();
if (!online) console.warn('package.test: the npm registry is unreachable (`npm ping` failed): install tests skipped');
const testOnline = online ? test : test.skip;

async function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}, timeout = 120_000): Promise<{ stdout: string; stderr: string }> {
  try {
    return await execFileP(cmd, args, { cwd, env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 << 20, timeout });
  } catch (e) {
    const err = e as { code?: unknown; stdout?: string; stderr?: string; message: string };
    throw new Error(`${path.basename(cmd)} ${args.join(' ')} failed (${String(err.code)}):\n${err.stdout ?? ''}\n${err.stderr ?? err.message}`);
  }
}

let tmp: string;
beforeAll(() => {
  ensureLib();
  if (!fs.existsSync(ADDON)) throw new Error(`${ADDON} is missing: run \`npm run build\` first`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nla-pkg-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('npm pack --dry-run: the tarball holds lib/ (js + d.ts), the native sources and CMakeLists.txt, and nothing private', async () => {
  const { stdout } = await run(NPM, ['pack', '--dry-run', '--json', '--ignore-scripts'], ROOT);
  const [info] = JSON.parse(stdout) as { files: { path: string }[]; size: number }[];
  const paths = info.files.map((f) => f.path);
  const need = ['package.json', 'CMakeLists.txt', 'lib/index.js', 'lib/index.d.ts', 'lib/cli.js', 'lib/native.js', 'lib/demo.js',
    'demo/manifest.json', 'demo/model.gguf', 'demo/adapter/adapter_config.json', 'demo/adapter/adapter_model.safetensors', 'demo/adapter/linear_head.pt',
    'native/addon/addon.cc', 'native/formats/gguf.cc', 'native/models/gemma4/tokenizer.cc', 'native/models/gemma4/model.cc', 'native/common/error.h'];
  expect(need.filter((p) => !paths.includes(p))).toEqual([]);
  // test tooling (tools/, the synthetic generator) stays out; the only weights are the demo's synthetic files
  const forbidden = paths.filter((p) => /^(src|test|tools|dist-tools|bench|build|\.cache|node_modules)\//.test(p) || /^lib\/(synthetic|formats\/.*writer)/.test(p) ||
    (/\.(gguf|safetensors|pt|tgz)$/.test(p) && !p.startsWith('demo/')));
  expect(forbidden).toEqual([]);
  expect(info.size).toBeLessThan(12 << 20); // the demo files (~8 MB) and no other weights or build trees
});

describe('installed from the tarball', () => {
  let app: string;
  let demo: { model: string; adapter: string; layer: number };

  beforeAll(async () => {
    if (!online) return;
    const { stdout } = await run(NPM, ['pack', '--json', '--ignore-scripts', '--pack-destination', tmp], ROOT);
    const tarball = path.join(tmp, (JSON.parse(stdout) as { filename: string }[])[0].filename);
    app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    const t0 = Date.now();
    await run(NPM, ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', tarball], app);
    const ms = Date.now() - t0;
    if (ms > 60_000) console.warn(`package.test: npm install took ${(ms / 1000).toFixed(0)} s (registry slow?)`);
    if (!PREBUILT_CPU) {
      // stand-in for a prebuild: the addon built here, where node-gyp-build looks first
      const release = path.join(app, 'node_modules', pkg.name, 'build', 'Release');
      fs.mkdirSync(release, { recursive: true });
      fs.copyFileSync(ADDON, path.join(release, 'nla_ar.node'));
    }
  }, 180_000);

  testOnline('the `nla-ar` bin runs the demo (synthetic weights) from the installed package', async () => {
    const bin = path.join(app, 'node_modules', '.bin', 'nla-ar');
    expect(fs.existsSync(bin)).toBe(true);
    const { stdout } = await run(process.execPath, [bin, 'demo', '--json'], app, { NLA_AR_CACHE: path.join(tmp, 'cache') });
    const j = JSON.parse(stdout) as { synthetic: boolean; files: { model: string; adapter: string; layer: number } };
    expect(j.synthetic).toBe(true);
    demo = j.files;
    expect(fs.existsSync(demo.model)).toBe(true);
  });

  const script = (importLine: string) => `${importLine}
const main = async () => {
  const [model, adapter, layer] = process.argv.slice(2);
  const ar = await Reconstructor.load({ model, adapter, layer: Number(layer), device: 'cpu' });
  const v = await ar.reconstruct('<explanation>a packaged call</explanation>');
  let code = null;
  try { await ar.reconstruct(42); } catch (e) { code = e instanceof NlaError ? e.code : 'not an NlaError'; }
  await ar.close();
  console.log(JSON.stringify({ isF32: v instanceof Float32Array, v: Array.from(v), code, backend: ar.info.backend }));
};
main().catch((e) => { console.error(e); process.exit(1); });
`;

  async function check(file: string): Promise<void> {
    if (!demo) throw new Error('the demo test did not produce the demo files');
    const { stdout } = await run(process.execPath, [file, demo.model, demo.adapter, String(demo.layer)], app);
    const out = JSON.parse(stdout) as { isF32: boolean; v: number[]; code: string; backend: string };
    expect({ isF32: out.isF32, n: out.v.length, code: out.code, backend: out.backend }).toEqual({ isF32: true, n: demoModelConfig().nEmbd, code: 'ERR_NLA_INVALID_ARG', backend: 'cpu' });
    // the same call through the source tree gives the same numbers (JSON carries float32 values exactly)
    const ar = await Reconstructor.load({ model: demo.model, adapter: demo.adapter, layer: demo.layer, device: 'cpu' });
    try {
      expect(out.v).toEqual(Array.from(await ar.reconstruct('<explanation>a packaged call</explanation>')));
    } finally {
      await ar.close();
    }
  }

  (PREBUILT_CPU && PREBUILT_CUDA ? testOnline : test.skip)(
    'the tarball carries both prebuilds; installed with --ignore-scripts it loads them and picks CPU on a GPU-less machine',
    async () => {
      const installed = path.join(app, 'node_modules', pkg.name);
      expect(fs.existsSync(path.join(installed, 'build'))).toBe(false); // nothing compiled: prebuilds only
      expect(fs.existsSync(path.join(installed, 'prebuilds', 'linux-x64', 'nla-ar.glibc.node'))).toBe(true);
      expect(fs.existsSync(path.join(installed, 'variants', 'cuda', 'prebuilds', 'linux-x64', 'nla-ar.glibc.node'))).toBe(true);
      if (!demo) throw new Error('the demo test did not produce the demo files');
      const f = path.join(app, 'variant.cjs');
      fs.writeFileSync(f, `const { Reconstructor } = require('nla-ar');
(async () => {
  const [model, adapter, layer] = process.argv.slice(2);
  const ar = await Reconstructor.load({ model, adapter, layer: Number(layer) });
  let cuda = null;
  try { await Reconstructor.load({ model, adapter, layer: Number(layer), device: 'cuda' }); cuda = 'loaded'; } catch (e) { cuda = e.code + ': ' + e.message; }
  console.log(JSON.stringify({ backend: ar.info.backend, reasons: ar.info.backendReasons, cuda }));
  await ar.close();
})().catch((e) => { console.error(e); process.exit(1); });
`);
      const { stdout } = await run(process.execPath, [f, demo.model, demo.adapter, String(demo.layer)], app);
      const out = JSON.parse(stdout) as { backend: string; reasons: string[]; cuda: string };
      const gpu = fs.existsSync('/dev/nvidiactl');
      if (gpu) {
        expect(out.backend).toBe('cuda');
      } else {
        expect(out.backend).toBe('cpu');
        // the CUDA prebuild itself loaded and was asked for devices (not "no CUDA binary")
        expect(out.reasons.join('; ')).toMatch(/cuda: no usable device/);
        expect(out.cuda).toMatch(/^ERR_NLA_NO_CUDA: .*no usable device/);
      }
    },
  );

  testOnline("CommonJS: require('nla-ar') loads the demo and reconstructs", async () => {
    const f = path.join(app, 'use.cjs');
    fs.writeFileSync(f, script("const { Reconstructor, NlaError } = require('nla-ar');"));
    await check(f);
  });

  testOnline("ESM: import { Reconstructor, NlaError } from 'nla-ar' loads the demo and reconstructs", async () => {
    const f = path.join(app, 'use.mjs');
    fs.writeFileSync(f, script("import { Reconstructor, NlaError } from 'nla-ar';"));
    await check(f);
  });

  testOnline('TypeScript: the shipped declarations type-check a consumer (node16 resolution, strict)', async () => {
    fs.writeFileSync(
      path.join(app, 'use.ts'),
      `import { Reconstructor, NlaError, LinearHead, Tokenizer, cosine, meanActivation, type ReconstructorInfo, type NlaErrorCode } from 'nla-ar';
export async function f(model: string): Promise<number> {
  const ar: Reconstructor = await Reconstructor.load({ model, adapter: null, layer: 3 });
  const info: ReconstructorInfo = ar.info;
  const v: Float32Array = await ar.reconstruct('x');
  const vs: Float32Array[] = await ar.reconstruct(['x', 'y'], { signal: AbortSignal.timeout(1000) });
  const code: NlaErrorCode = new NlaError('ERR_NLA_IO', 'm').code;
  const h: LinearHead = ar.head;
  // the documented FVE recipe: activation() output and meanActivation() straight into roundTrip
  const a = await ar.activation('source text', { layer: 2 });
  const rt = await ar.roundTrip([{ activation: a, explanation: 'x' }], { mean: meanActivation([a, v]) });
  const fve: number | undefined = rt[0].fve;
  const t: Tokenizer = await Tokenizer.fromGGUF(model);
  await ar.close();
  return cosine(v, vs[0]) + info.layer + h.inDim + t.vocabSize + code.length + (fve ?? 0);
}
`,
    );
    fs.writeFileSync(
      path.join(app, 'tsconfig.json'),
      // a Node project: @types/node present (the declarations use Buffer, and AsyncDisposable, which
      // @types/node >= 20.11 declares for ES2022 targets); taken from this repo instead of a second install
      JSON.stringify({
        compilerOptions: { module: 'node16', moduleResolution: 'node16', target: 'ES2022', lib: ['ES2022'], strict: true, noEmit: true,
          typeRoots: [path.join(ROOT, 'node_modules', '@types')], types: ['node'] },
        files: ['use.ts'],
      }),
    );
    await run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(app, 'tsconfig.json')], app);
  });

  // ---------------------------------------------------------------- issue 12: import styles and compilers

  testOnline('ESM entry (lib/index.mjs): named, default and namespace imports are the CommonJS objects (one instance)', async () => {
    const f = path.join(app, 'styles.mjs');
    fs.writeFileSync(f, `import nla, { Reconstructor, NlaError } from 'nla-ar';
import * as ns from 'nla-ar';
import { createRequire } from 'node:module';
const cjs = createRequire(import.meta.url)('nla-ar');
const names = (o) => Object.keys(o).filter((k) => k !== 'default' && k !== '__esModule').sort();
console.log(JSON.stringify({
  named: Reconstructor === cjs.Reconstructor && NlaError === cjs.NlaError,
  dflt: nla === cjs.default && nla.Reconstructor === Reconstructor,
  ns: ns.Reconstructor === Reconstructor && ns.default === nla,
  esmNames: names(ns), cjsNames: names(cjs), defaultNames: names(nla),
}));
`);
    const { stdout } = await run(process.execPath, [f], app);
    const out = JSON.parse(stdout) as { named: boolean; dflt: boolean; ns: boolean; esmNames: string[]; cjsNames: string[]; defaultNames: string[] };
    expect({ named: out.named, dflt: out.dflt, ns: out.ns }).toEqual({ named: true, dflt: true, ns: true });
    expect(out.esmNames).toEqual(out.cjsNames);
    expect(out.defaultNames).toEqual(out.cjsNames);
    expect(out.cjsNames).toEqual(expect.arrayContaining(['Reconstructor', 'NlaError', 'ActivationVector', 'hubDownload', 'roundTripTable', 'demoFiles']));
    // CommonJS: require('nla-ar').default and a dynamic import() reach the same objects
    const g = path.join(app, 'styles.cjs');
    fs.writeFileSync(g, `const cjs = require('nla-ar');
import('nla-ar').then((esm) => console.log(JSON.stringify({ dflt: cjs.default.Reconstructor === cjs.Reconstructor, dyn: esm.Reconstructor === cjs.Reconstructor && esm.default === cjs.default })));
`);
    const r2 = JSON.parse((await run(process.execPath, [g], app)).stdout) as { dflt: boolean; dyn: boolean };
    expect(r2).toEqual({ dflt: true, dyn: true });
  });

  // One consumer of the public API; each @ts-expect-error fails the compile if the type under it became `any`.
  const consumer = `import nla, { Reconstructor, NlaError, ActivationVector, roundTripTable, controlsChart, crossRowIdentity, hubDownload, formatProgress,
  type LoadOptions, type HubOptions, type DownloadProgress, type RoundTripResult, type ControlsSummary, type PretrainedLoadOptions, type NlaErrorCode } from 'nla-ar';
import * as ns from 'nla-ar';

export async function use(model: string): Promise<string> {
  const load: LoadOptions = { model, adapter: null, layer: 3, device: 'cpu', numerics: 'exact' };
  // @ts-expect-error a misspelled option
  const typo: LoadOptions = { model, layr: 3 };
  // @ts-expect-error a wrong option value
  const wrong: LoadOptions = { model, device: 'gpu' };
  const ar: Reconstructor = await nla.Reconstructor.load(load);
  const same: typeof Reconstructor = ns.Reconstructor;
  // @ts-expect-error an unknown roundTrip option
  await ar.roundTrip({ activation: [1], explanation: 'x' }, { meen: [1] });
  const a: Float32Array = await ar.activation('text', { layer: 2 });
  const rt: RoundTripResult = await ar.roundTrip({ activation: a, explanation: 'x' });
  // @ts-expect-error cosine is a number
  const s: string = rt.cosine;
  const c: ControlsSummary = await ar.controls([{ activation: a, explanation: 'x' }], { seed: 3 });
  const hub: HubOptions = { revision: 'main', signal: AbortSignal.timeout(1000), onProgress: (p: DownloadProgress) => console.log(formatProgress(p)) };
  // @ts-expect-error an unknown hub option
  const badHub: HubOptions = { revison: 'main' };
  const pre: PretrainedLoadOptions = { model: 'hf:owner/repo/model.gguf', layer: 17, hub };
  // @ts-expect-error fromPretrained takes the adapter from the repository
  const badPre: PretrainedLoadOptions = { model, adapter: 'x' };
  const ar2: Reconstructor = await Reconstructor.fromPretrained('owner/repo', pre);
  const n: number = ActivationVector.view(a).norm;
  const code: NlaErrorCode = new NlaError('ERR_NLA_HUB', 'm').code;
  const f = await hubDownload('owner/repo', 'x', hub);
  await ar.close();
  await ar2.close();
  return roundTripTable([rt]) + controlsChart(c) + crossRowIdentity([a, a], [a, a]).top1 + f.path + code + n + (same === Reconstructor) + [typo, wrong, badHub, badPre, s].length;
}
`;

  let ts50: string;
  async function typescript50(): Promise<string> {
    if (!ts50) {
      const dir = path.join(tmp, 'ts-5.0');
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'ts50', version: '1.0.0', private: true }));
      // tslab 1.0.22 compiles notebook cells with TypeScript 5.0.4; a temp install, as a devDependency alias's tsc
      // bin would shadow the repo's TypeScript 6 in node_modules/.bin
      await run(NPM, ['install', '--no-audit', '--no-fund', '--prefer-offline', 'typescript@5.0.4'], dir);
      ts50 = path.join(dir, 'node_modules', 'typescript', 'bin', 'tsc');
    }
    return ts50;
  }

  // one program per setting (each checks every declaration file, @types/node included, so they are not cheap)
  const configs: Record<string, { files: string[]; options: Record<string, unknown> }> = {
    // what tslab does: CommonJS, Node10 resolution (main/types), esModuleInterop
    'tslab (commonjs, node10, esModuleInterop)': { files: ['c-tslab.ts'], options: { module: 'commonjs', moduleResolution: 'node10', esModuleInterop: true } },
    // a CommonJS file (require condition, index.d.ts) and an ESM file (import condition, index.d.mts)
    'node16 (.cts and .mts)': { files: ['c-node16.cts', 'c-node16.mts'], options: { module: 'node16', moduleResolution: 'node16' } },
    'bundler': { files: ['c-bundler.ts'], options: { module: 'esnext', moduleResolution: 'bundler' } },
  };

  for (const [ts, label] of [['5.0', 'TypeScript 5.0.4 (tslab)'], ['repo', `TypeScript ${require('typescript/package.json').version as string}`]] as const) {
    testOnline(`${label}: the shipped declarations type-check with skipLibCheck: false under tslab, node16 (CJS, ESM) and bundler settings; no option type is any`, async () => {
      const tsc = ts === '5.0' ? await typescript50() : require.resolve('typescript/bin/tsc');
      const dir = path.join(app, `types-${ts}`);
      fs.mkdirSync(dir, { recursive: true });
      const failures: string[] = [];
      for (const [name, c] of Object.entries(configs)) {
        for (const f of c.files) fs.writeFileSync(path.join(dir, f), consumer);
        const deprecated = ts === 'repo' && c.options.moduleResolution === 'node10' ? { ignoreDeprecations: '6.0' } : {};
        const cfg = path.join(dir, `tsconfig.${c.files[0]}.json`);
        fs.writeFileSync(cfg, JSON.stringify({
          compilerOptions: { ...c.options, ...deprecated, target: 'ES2022', lib: ['ES2022'], strict: true, noEmit: true, skipLibCheck: false,
            typeRoots: [path.join(ROOT, 'node_modules', '@types')], types: ['node'] },
          files: c.files,
        }));
        try {
          await run(process.execPath, [tsc, '-p', cfg], app);
        } catch (e) {
          failures.push(`${name}: ${(e as Error).message}`);
        }
      }
      expect(failures).toEqual([]);
    }, 180_000);
  }

  testOnline('`import nla from \'nla-ar\'` compiled by TypeScript runs in every module setting (tslab-style CommonJS, no esModuleInterop, ESM)', async () => {
    if (!demo) throw new Error('the demo test did not produce the demo files');
    const src = `import nla, { Reconstructor } from 'nla-ar';
import * as ns from 'nla-ar';
async function main(): Promise<void> {
  const [model, adapter, layer] = process.argv.slice(2);
  const ar = await nla.Reconstructor.load({ model, adapter, layer: Number(layer), device: 'cpu' });
  const v = await ar.reconstruct('<explanation>a packaged call</explanation>');
  await ar.close();
  console.log(JSON.stringify({ same: nla.Reconstructor === Reconstructor && ns.Reconstructor === Reconstructor, n: v.length, first: v[0] }));
}
main().catch((e) => { console.error(e); process.exit(1); });
`;
    const variants: { name: string; file: string; options: Record<string, unknown> }[] = [
      { name: 'commonjs + esModuleInterop', file: 'run-interop.ts', options: { module: 'commonjs', moduleResolution: 'node10', esModuleInterop: true, ignoreDeprecations: '6.0' } },
      { name: 'commonjs without esModuleInterop', file: 'run-plain.ts', options: { module: 'commonjs', moduleResolution: 'node10', esModuleInterop: false, ignoreDeprecations: '6.0' } },
      { name: 'node16 ESM', file: 'run-esm.mts', options: { module: 'node16', moduleResolution: 'node16' } },
    ];
    const outs: unknown[] = [];
    for (const v of variants) {
      const dir = path.join(app, `emit-${v.file.replace(/\W/g, '_')}`);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, v.file), src);
      fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
        // the declarations are type-checked above; this is about what the emitted code does at run time
        compilerOptions: { ...v.options, target: 'ES2022', lib: ['ES2022'], strict: true, skipLibCheck: true, outDir: 'out', typeRoots: [path.join(ROOT, 'node_modules', '@types')], types: ['node'] },
        files: [v.file],
      }));
      await run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(dir, 'tsconfig.json')], dir);
      const js = path.join(dir, 'out', v.file.replace(/\.mts$/, '.mjs').replace(/\.ts$/, '.js'));
      const { stdout } = await run(process.execPath, [js, demo.model, demo.adapter, String(demo.layer)], app);
      outs.push({ name: v.name, ...(JSON.parse(stdout) as object) });
    }
    const first = (outs[0] as { first: number }).first;
    expect(outs).toEqual(variants.map((v) => ({ name: v.name, same: true, n: demoModelConfig().nEmbd, first })));
  }, 180_000);

  testOnline('the tarball carries the ESM entry, its types and binding.gyp with its source lister', async () => {
    const { stdout } = await run(NPM, ['pack', '--dry-run', '--json', '--ignore-scripts'], ROOT);
    const paths = (JSON.parse(stdout) as { files: { path: string }[] }[])[0].files.map((f) => f.path);
    expect(['lib/index.mjs', 'lib/index.d.mts', 'binding.gyp', 'scripts/gyp-sources.js', 'lib/hub.js', 'lib/report.js'].filter((p) => !paths.includes(p))).toEqual([]);
  });
});

describe('installed from the tarball with its install script, where no prebuild fits', () => {
  // A platform without a fitting prebuild is simulated by --build-from-source, which makes scripts/install.js
  // compile the CPU variant from the shipped native/ sources with cmake-js, as it would there.
  testOnline(
    'the install script builds the CPU variant from source and the package works',
    async () => {
      const { stdout } = await run(NPM, ['pack', '--json', '--ignore-scripts', '--pack-destination', tmp], ROOT);
      const tarball = path.join(tmp, (JSON.parse(stdout) as { filename: string }[])[0].filename);
      const app2 = path.join(tmp, 'app-src');
      fs.mkdirSync(app2);
      fs.writeFileSync(path.join(app2, 'package.json'), JSON.stringify({ name: 'app2', version: '1.0.0', private: true }));
      // compiling the engine takes a minute or two on 2 cores (more on a loaded machine)
      await run(NPM, ['install', '--no-audit', '--no-fund', '--prefer-offline', '--build-from-source', '--foreground-scripts', tarball], app2, {}, 360_000);
      const installed = path.join(app2, 'node_modules', pkg.name);
      expect(fs.existsSync(path.join(installed, 'build', 'Release', 'nla_ar.node'))).toBe(true);
      const r = await run(process.execPath, ['-e', "const {Tokenizer}=require('nla-ar'); Tokenizer.fromGGUF(process.argv[1]).then(t=>console.log(JSON.stringify(Array.from(t.encode('Hello world')))))", tinyModel('q8_0-full', { weightType: 'q8_0' }).path], app2);
      const ids = JSON.parse(r.stdout) as number[];
      expect(ids[0]).toBe(2); // BOS first
      expect(ids.length).toBeGreaterThan(1);
    },
    480_000,
  );
});
