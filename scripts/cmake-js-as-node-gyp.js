#!/usr/bin/env node
// prebuildify runs `<node-gyp> rebuild --target=<v> --devdir=<dir> --arch=<a> --release|--debug` and then takes the
// first *.node it finds in build/Release. This shim translates that call into a cmake-js build (see
// shared/design/packaging.md §1.6), with two differences from the bare recipe there:
//   * it builds in its own folder (.cache/prebuild/<variant>), never in build/ or variants/cuda/build, so a prebuild
//     leaves the developer's CPU and CUDA build trees (and their CMake caches) alone;
//   * it then copies the one .node it built into <cwd>/build/Release, the only place prebuildify looks. scripts/prebuild.sh
//     runs prebuildify with --cwd set to an empty staging folder (.cache/prebuild/stage-<variant>), so that folder holds
//     nothing else and prebuildify cannot pick a developer's build (or one another engineer is writing right now).
// The sources are always those of this checkout (the folder above scripts/).
// Extra CMake definitions come from NLA_CMAKE_DEFINES ("NLA_CUDA=ON;CMAKE_CUDA_ARCHITECTURES=80-real"), as in the design.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const args = process.argv.slice(2);
const cmd = args.find((a) => !a.startsWith('-'));
if (cmd !== 'rebuild' && cmd !== 'build') {
  console.error(`cmake-js-as-node-gyp: unsupported command ${JSON.stringify(cmd)} (prebuildify calls "rebuild")`);
  process.exit(2);
}
const arch = (args.find((a) => a.startsWith('--arch=')) || '').slice(7);
const debug = args.includes('--debug');
const defines = (process.env.NLA_CMAKE_DEFINES || '').split(';').map((d) => d.trim()).filter(Boolean);
const cuda = defines.some((d) => /^NLA_CUDA=(ON|1|TRUE|YES)$/i.test(d));
const root = path.resolve(__dirname, '..');
const stage = process.cwd();
const out = path.join(root, '.cache', 'prebuild', cuda ? 'cuda' : 'cpu');
const cli = [
  require.resolve('cmake-js/bin/cmake-js'),
  'compile', // incremental in its private folder; cmake decides what is stale
  '--out', out,
  ...(arch ? ['--arch', arch] : []),
  ...(debug ? ['--debug'] : []),
  ...defines.map((d) => `--CD${d}`),
];
const r = spawnSync(process.execPath, cli, { stdio: 'inherit', cwd: root });
if (r.status !== 0) process.exit(r.status ?? 1);

const config = debug ? 'Debug' : 'Release';
const name = cuda ? 'nla_ar_cuda.node' : 'nla_ar.node';
const built = path.join(out, config, name);
if (!fs.existsSync(built)) {
  console.error(`cmake-js-as-node-gyp: the build did not produce ${built}`);
  process.exit(1);
}
const dest = path.join(stage, 'build', config);
fs.mkdirSync(dest, { recursive: true });
const others = fs.readdirSync(dest).filter((f) => f.endsWith('.node') && f !== name);
if (others.length > 0) {
  console.error(`cmake-js-as-node-gyp: ${dest} also holds ${others.join(', ')}; prebuildify could take the wrong file ` +
    '(run through scripts/prebuild.sh, which moves them aside)');
  process.exit(1);
}
fs.copyFileSync(built, path.join(dest, name));
console.log(`cmake-js-as-node-gyp: ${path.relative(root, built)} -> ${path.relative(root, path.join(dest, name))}`);
