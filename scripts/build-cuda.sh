#!/usr/bin/env bash
# Builds the CUDA variant of the addon into variants/cuda/build/Release/nla_ar_cuda.node (never build/, so the CPU
# and CUDA binaries and CMake caches never collide), then checks that it loads and links cudart statically.
#
#   scripts/build-cuda.sh            # full fat binary: SASS sm_75/80/86/89/90/120 + PTX compute_120
#   scripts/build-cuda.sh --ci       # fewer architectures for a faster CI compile (80-real + 120-virtual PTX)
#   NLA_CUDA_ARCHS="90-real" scripts/build-cuda.sh      # any CMake CUDA_ARCHITECTURES list (';'-separated)
#   scripts/build-cuda.sh --clean    # drop variants/cuda/build first
#
# On a machine without a GPU the binary still loads; cudaDeviceCount() then reports -35 (no driver) or -100 (no device).
set -euo pipefail
cd "$(dirname "$0")/.."

archs="${NLA_CUDA_ARCHS:-}"
for a in "$@"; do
  case "$a" in
    --ci) [[ -n "$archs" ]] || archs="80-real;120-virtual" ;;
    --clean) rm -rf variants/cuda/build ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) echo "build-cuda: unknown argument $a" >&2; exit 2 ;;
  esac
done
if ! command -v nvcc >/dev/null 2>&1 && [[ -z "${CUDACXX:-}" ]]; then
  echo "build-cuda: nvcc not found (put it on PATH or set CUDACXX)" >&2
  exit 1
fi

args=(compile --out variants/cuda/build --CDNLA_CUDA=ON)
# An empty value would keep whatever the CMake cache holds; pass the default list explicitly so that a
# --ci build followed by a full build really rebuilds for every architecture.
args+=("--CDCMAKE_CUDA_ARCHITECTURES=${archs:-75-real;80-real;86-real;89-real;90-real;120-real;120-virtual}")

start=$(date +%s.%N)
node node_modules/cmake-js/bin/cmake-js "${args[@]}"
end=$(date +%s.%N)
node_file=variants/cuda/build/Release/nla_ar_cuda.node
[[ -f "$node_file" ]] || { echo "build-cuda: $node_file was not produced" >&2; exit 1; }

if ldd "$node_file" | grep -q 'libcudart\|libcublas'; then
  echo "build-cuda: $node_file links the CUDA runtime dynamically:" >&2
  ldd "$node_file" >&2
  exit 1
fi
node -e '
  const b = require(process.argv[1]);
  if (b.variant !== "cuda") throw new Error("variant is " + b.variant);
  const n = b.cudaDeviceCount();
  console.log(`build-cuda: loads; variant=cuda; cudaDeviceCount()=${n}` + (n > 0 ? "" : ` (no usable device: cudaError ${-n})`));
' "$(pwd)/$node_file"
printf 'build-cuda: %s (%s, archs %s) built in %.1f s\n' "$node_file" "$(du -h "$node_file" | cut -f1)" \
  "${archs:-full list}" "$(awk "BEGIN{print $end - $start}")"
