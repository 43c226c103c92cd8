#!/usr/bin/env bash
# Builds the shipped binaries with prebuildify (through scripts/cmake-js-as-node-gyp.js):
#   prebuilds/linux-x64/nla-ar.glibc.node                 CPU
#   variants/cuda/prebuilds/linux-x64/nla-ar.glibc.node   CUDA (static cudart, SASS sm_75/80/86/89/90/120 + PTX 120)
#
#   npm run prebuildify               # both
#   scripts/prebuild.sh --cpu-only    # no nvcc needed
#   scripts/prebuild.sh --cuda-only
#   NLA_CUDA_ARCHS="80-real;90-real" scripts/prebuild.sh --cuda-only   # other CUDA architectures
#
# The npm script is called "prebuildify", not "prebuild": npm would run a script named "prebuild" as the
# pre-hook of every `npm run build`.
set -euo pipefail
cd "$(dirname "$0")/.."

cpu=1
cuda=1
for a in "$@"; do
  case "$a" in
    --cpu-only) cuda=0 ;;
    --cuda-only) cpu=0 ;;
    -h|--help) sed -n 2,13p "$0"; exit 0 ;;
    *) echo "prebuild: unknown argument $a" >&2; exit 2 ;;
  esac
done
if [[ $cuda == 1 ]] && ! command -v nvcc >/dev/null 2>&1 && [[ -z "${CUDACXX:-}" ]]; then
  echo "prebuild: nvcc not found (set CUDACXX or PATH, or use --cpu-only)" >&2
  exit 1
fi

# prebuildify takes the first .node in <cwd>/build/Release: run it in an empty staging folder (with a copy of
# package.json for the name), never in the checkout, whose build/ belongs to the developer.
stage() {
  local d=".cache/prebuild/stage-$1"
  rm -rf "$d" && mkdir -p "$d"
  node -e 'const p=require("./package.json"); require("fs").writeFileSync(process.argv[1], JSON.stringify({name: p.name, version: p.version, binary: p.binary}))' "$d/package.json"
  echo "$d"
}
PREBUILDIFY=(node "$(pwd)/node_modules/prebuildify/bin.js" --napi --strip --tag-libc --node-gyp "$(pwd)/scripts/cmake-js-as-node-gyp.js")

if [[ $cpu == 1 ]]; then
  start=$SECONDS
  NLA_CMAKE_DEFINES="" "${PREBUILDIFY[@]}" --cwd "$(stage cpu)" --out "$(pwd)"
  f=prebuilds/linux-x64/nla-ar.glibc.node
  [[ "$(uname -s)" == Linux ]] || f=$(ls prebuilds/*/nla-ar*.node | head -1)
  echo "prebuild: CPU  -> $f ($(du -h "$f" | cut -f1), $((SECONDS - start)) s)"
fi
if [[ $cuda == 1 ]]; then
  start=$SECONDS
  defs="NLA_CUDA=ON"
  [[ -n "${NLA_CUDA_ARCHS:-}" ]] && defs="$defs;CMAKE_CUDA_ARCHITECTURES=$NLA_CUDA_ARCHS"
  NLA_CMAKE_DEFINES="$defs" "${PREBUILDIFY[@]}" --cwd "$(stage cuda)" --out "$(pwd)/variants/cuda"
  f=variants/cuda/prebuilds/linux-x64/nla-ar.glibc.node
  echo "prebuild: CUDA -> $f ($(du -h "$f" | cut -f1), $((SECONDS - start)) s)"
  if ldd "$f" | grep -q libcudart; then echo "prebuild: $f links libcudart dynamically" >&2; exit 1; fi
fi
# Each binary must load (undefined symbols only show up at dlopen).
node -e '
  process.env.PREBUILDS_ONLY = "1";  // read when node-gyp-build is first required
  const load = require("node-gyp-build");
  for (const [dir, want] of [[".", "cpu"], ["variants/cuda", "cuda"]]) {
    let b;
    try { b = load(require("path").resolve(dir)); } catch (e) { if (process.argv[1].includes(want)) throw e; continue; }
    if (b.variant !== want) throw new Error(`${dir}: variant ${b.variant}, expected ${want}`);
    console.log(`prebuild: ${want} binary loads (cudaDeviceCount ${b.cudaDeviceCount()})`);
  }' "$([[ $cpu == 1 ]] && echo cpu)$([[ $cuda == 1 ]] && echo cuda)"
