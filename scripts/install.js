#!/usr/bin/env node
// npm "install" script. The shipped prebuilds (prebuilds/, variants/cuda/prebuilds/) load without it, so it only
// matters where no prebuild fits this platform: then it builds the CPU variant from source with cmake-js.
//
//   exit 0 at once when the CPU binary (a prebuild or a local build) loads;
//   npm_config_build_from_source=true (npm install --build-from-source): always build the CPU variant;
//   NLA_AR_BUILD_CUDA=1: also build the CUDA variant (needs nvcc; a failure there only warns);
//   NLA_AR_SKIP_BUILD=1: never build (report and exit 0).
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const env = process.env;
const truthy = (v) => v !== undefined && /^(1|true|yes|on)$/i.test(String(v));
const log = (m) => console.log(`nla-ar install: ${m}`);

function loads(dir) {
  try {
    const b = require('node-gyp-build')(dir);
    return { ok: true, variant: b.variant };
  } catch (e) {
    return { ok: false, error: String(e && e.message ? e.message : e).split('\n')[0] };
  }
}

function cmakeJs(args) {
  let cli;
  try {
    cli = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
  } catch {
    return { status: 1, error: 'cmake-js is not installed' };
  }
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, stdio: 'inherit' });
  return { status: r.status ?? 1, error: r.error ? r.error.message : undefined };
}

function main() {
  const fromSource = truthy(env.npm_config_build_from_source);
  const wantCuda = truthy(env.NLA_AR_BUILD_CUDA);
  const cpu = loads(root);
  if (cpu.ok && !fromSource && !wantCuda) {
    log(`a prebuilt binary loads (variant ${cpu.variant}); nothing to build`);
    return 0;
  }
  if (truthy(env.NLA_AR_SKIP_BUILD)) {
    log(`NLA_AR_SKIP_BUILD is set; not building (${cpu.ok ? 'a binary loads' : `no binary loads: ${cpu.error}`})`);
    return 0;
  }
  if (!cpu.ok || fromSource) {
    log(cpu.ok ? 'building the CPU variant from source (--build-from-source)' : `no prebuilt binary fits (${cpu.error}); building the CPU variant from source`);
    if (!fs.existsSync(path.join(root, 'CMakeLists.txt'))) {
      console.error('nla-ar install: CMakeLists.txt is missing; cannot build from source');
      return 1;
    }
    const r = cmakeJs(['compile', '--out', 'build']);
    const after = loads(root);
    if (r.status !== 0 || !after.ok) {
      console.error(
        'nla-ar install: the source build failed' + (r.error ? ` (${r.error})` : '') + (after.ok ? '' : `; ${after.error}`) +
          '. It needs CMake >= 3.25 and a C++17 compiler (g++ >= 9 or clang >= 10).',
      );
      return 1;
    }
    log(`built ${path.join('build', 'Release', 'nla_ar.node')}`);
  }
  if (wantCuda) {
    log('NLA_AR_BUILD_CUDA=1: building the CUDA variant (variants/cuda/build)');
    const args = ['compile', '--out', path.join('variants', 'cuda', 'build'), '--CDNLA_CUDA=ON'];
    if (env.NLA_CUDA_ARCHS) args.push(`--CDCMAKE_CUDA_ARCHITECTURES=${env.NLA_CUDA_ARCHS}`);
    const r = cmakeJs(args);
    const cuda = loads(path.join(root, 'variants', 'cuda'));
    if (r.status !== 0 || !cuda.ok) console.warn(`nla-ar install: warning: the CUDA build failed; the CPU variant will be used${cuda.ok ? '' : ` (${cuda.error})`}`);
    else log('built variants/cuda/build/Release/nla_ar_cuda.node');
  }
  return 0;
}

process.exitCode = main();
