#!/usr/bin/env bash
# CI: every fuzzer (native libFuzzer + ASan/UBSan harnesses, TypeScript targets) for a short budget, so that a new
# crash, hang or memory blow-up fails CI. Installs Debian's clang and libFuzzer when they are missing.
#   NLA_CI_FUZZ_SECONDS (default 25): seconds per target (9 targets).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${NLA_CI_FUZZ_SECONDS:-25}"

have_libfuzzer() { compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null; }
if ! command -v clang++ >/dev/null || ! have_libfuzzer; then
  echo "ci-fuzz: installing clang and libFuzzer (apt)"
  apt-get update -qq
  command -v clang++ >/dev/null || apt-get install -y -qq clang >/dev/null
  major="$(clang++ --version | grep -Eo 'version [0-9]+' | grep -Eo '[0-9]+' | head -1)"
  apt-get install -y -qq "libfuzzer-${major}-dev" >/dev/null
fi
start=$(date +%s)
bash scripts/fuzz.sh run --seconds "$seconds"
echo "ci-fuzz: $(( $(date +%s) - start )) s" >&2
