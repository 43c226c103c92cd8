#!/usr/bin/env bash
# Fuzzing of every parser of untrusted input (docs/reliability.md).
#
#   scripts/fuzz.sh run [--minutes N | --seconds S] [--targets a,b,...]   build what is needed, run each target
#   scripts/fuzz.sh build          libFuzzer harnesses (clang, ASan + UBSan) -> .cache/fuzz/bin/<target>
#   scripts/fuzz.sh replay-build   the same harnesses without the fuzzer (g++, linked with build/libnla_core.a)
#                                  -> .cache/fuzz/replay/<target>; used by test/fuzz-regressions.test.ts
#   scripts/fuzz.sh corpus         regenerate the seed corpora (test/fuzz/corpus/<target>/)
#
# Native targets (test/fuzz/native/<target>.cc): gguf (model file -> engine -> one tiny pass), safetensors, peft
# (adapter folder), json, tokenizer (arbitrary bytes), regex (PEFT patterns). TypeScript targets
# (test/fuzz/js/targets.ts, run by test/fuzz/js/fuzzer.ts): zip, pickle, torch.
# A finding (crash, sanitizer report, uncaught exception, hang, memory above the limit) is written to
# .cache/fuzz/findings/<target>/ and makes the run exit 1; copy it to test/fuzz/regressions/<target>/ with its fix.
# New corpus entries go to .cache/fuzz/work/<target>/ (the committed seeds stay small).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ="$ROOT/.cache/fuzz"
NATIVE_TARGETS=(gguf safetensors peft json tokenizer regex)
TS_TARGETS=(zip pickle torch)
CLANGXX="${CLANGXX:-}"
if [[ -z "$CLANGXX" ]]; then
  for c in clang++ clang++-19 clang++-16 clang++-15 clang++-14; do command -v "$c" >/dev/null && { CLANGXX="$c"; break; }; done
fi
CXX="${CXX:-g++}"
SAN=(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)

log() { echo "fuzz: $*" >&2; }
die() { echo "fuzz: ERROR: $*" >&2; exit 2; }
newer_than() { local out="$1"; shift; [[ ! -e "$out" ]] && return 0
  local f; for f in "$@"; do [[ "$f" -nt "$out" ]] && return 0; done; return 1; }

engine_sources() { (cd "$ROOT" && find native -name '*.cc' -not -path 'native/addon/*' | sort); }
engine_headers() { (cd "$ROOT" && find native \( -name '*.h' -o -name '*.inc' \) -not -path 'native/addon/*' | sed "s|^|$ROOT/|"); }

max_len() {
  case "$1" in
    gguf) echo 131072 ;; tokenizer) echo 4096 ;; regex) echo 2048 ;; json) echo 16384 ;;
    safetensors|peft) echo 16384 ;; *) echo 65536 ;;
  esac
}

vocab() {
  local real="$ROOT/.cache/reference/llama.cpp/models/ggml-vocab-gemma-4.gguf"
  if [[ -f "$real" ]]; then echo "$real"; return; fi
  [[ -f "$FUZZ/vocab.gguf" ]] || { build_ts >/dev/null; node "$FUZZ/js/test/fuzz/make-corpus.js" --vocab-only >&2; }
  echo "$FUZZ/vocab.gguf"
}

build_fuzzers() {
  [[ -n "$CLANGXX" ]] || die "clang++ not found (apt-get install clang libfuzzer-14-dev; scripts/ci-fuzz.sh does it)"
  mkdir -p "$FUZZ/obj" "$FUZZ/bin"
  mapfile -t srcs < <(engine_sources)
  mapfile -t hdrs < <(engine_headers)
  local objs=() pids=() jobs_max; jobs_max="$(nproc 2>/dev/null || echo 2)"
  for rel in "${srcs[@]}"; do
    local o="$FUZZ/obj/$(echo "${rel#native/}" | tr / _).o"
    objs+=("$o")
    if newer_than "$o" "$ROOT/$rel" "${hdrs[@]}"; then
      log "compiling $rel (ASan+UBSan)"
      while (( $(jobs -rp | wc -l) >= jobs_max )); do wait -n; done
      "$CLANGXX" -std=c++17 -O1 -g "${SAN[@]}" -fsanitize=fuzzer-no-link -I"$ROOT/native" -c "$ROOT/$rel" -o "$o" &
    fi
  done
  wait
  for t in "${NATIVE_TARGETS[@]}"; do
    local h="$ROOT/test/fuzz/native/$t.cc" out="$FUZZ/bin/$t"
    if newer_than "$out" "$h" "$ROOT/test/fuzz/native/fuzz_common.h" "${objs[@]}"; then
      log "linking fuzzer $t"
      "$CLANGXX" -std=c++17 -O1 -g "${SAN[@]}" -fsanitize=fuzzer -I"$ROOT/native" "$h" "${objs[@]}" -o "$out" -pthread
    fi
  done
}

build_replay() {
  local lib="$ROOT/build/libnla_core.a"
  [[ -f "$lib" ]] || die "$lib is missing: run npm run build:native"
  mapfile -t srcs < <(engine_sources)
  mapfile -t hdrs < <(engine_headers)
  local f; for f in "${srcs[@]}"; do
    [[ "$ROOT/$f" -nt "$lib" ]] && die "$lib is older than $f: run npm run build:native"
  done
  mkdir -p "$FUZZ/replay"
  for t in "${NATIVE_TARGETS[@]}"; do
    local h="$ROOT/test/fuzz/native/$t.cc" out="$FUZZ/replay/$t"
    if newer_than "$out" "$h" "$ROOT/test/fuzz/native/fuzz_common.h" "$ROOT/test/fuzz/native/replay_main.cc" "$lib" "${hdrs[@]}"; then
      log "linking replay $t"
      "$CXX" -std=c++17 -O1 -g -I"$ROOT/native" "$h" "$ROOT/test/fuzz/native/replay_main.cc" "$lib" -o "$out.tmp.$$" -pthread
      mv "$out.tmp.$$" "$out"  # atomic: two test files may build at once
    fi
  done
  # the matcher's probe for the differential test against Python's re (test/peft-regex.test.ts)
  local probe="$FUZZ/replay/regex_probe"
  if newer_than "$probe" "$ROOT/test/fuzz/native/regex_probe.cc" "$lib" "${hdrs[@]}"; then
    log "linking regex_probe"
    "$CXX" -std=c++17 -O1 -I"$ROOT/native" "$ROOT/test/fuzz/native/regex_probe.cc" "$lib" -o "$probe.tmp.$$" -pthread
    mv "$probe.tmp.$$" "$probe"
  fi
}

build_ts() {
  local stamp="$FUZZ/js/.stamp"
  if [[ ! -f "$stamp" ]] || [[ -n "$(find "$ROOT/src" "$ROOT/tools" "$ROOT/test/fuzz" -name '*.ts' -newer "$stamp" -print -quit)" ]]; then
    log "compiling the TypeScript targets"
    (cd "$ROOT" && node node_modules/typescript/bin/tsc -p test/fuzz/tsconfig.json)
    touch "$stamp"
  fi
}

run_all() {
  local seconds=60 targets=("${NATIVE_TARGETS[@]}" "${TS_TARGETS[@]}")
  while (( $# )); do
    case "$1" in
      --minutes) seconds=$(( $2 * 60 )); shift 2 ;;
      --seconds) seconds="$2"; shift 2 ;;
      --targets) IFS=, read -r -a targets <<<"$2"; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  local want_native=0 t
  for t in "${targets[@]}"; do [[ " ${NATIVE_TARGETS[*]} " == *" $t "* ]] && want_native=1; done
  (( want_native )) && build_fuzzers
  build_ts
  local failed=() summary=()
  for t in "${targets[@]}"; do
    mkdir -p "$FUZZ/work/$t" "$FUZZ/findings/$t"
    local logf="$FUZZ/$t.log" status=0  # one run per target at a time (the log and the work corpus are shared)
    log "running $t for ${seconds} s"
    if [[ " ${NATIVE_TARGETS[*]} " == *" $t "* ]]; then
      NLA_FUZZ_VOCAB="$(vocab)" ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}" \
        "$FUZZ/bin/$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2560 -max_len="$(max_len "$t")" \
        -print_final_stats=1 -artifact_prefix="$FUZZ/findings/$t/" "$FUZZ/work/$t" "$ROOT/test/fuzz/corpus/$t" \
        >"$logf" 2>&1 || status=$?
      local execs cov ft  # the log may hold raw input bytes: grep -a, and no stat is fatal
      execs="$(grep -ao 'stat::number_of_executed_units: *[0-9]*' "$logf" | grep -o '[0-9]*$' | tail -1 || true)"
      cov="$(grep -aEo 'cov: [0-9]+' "$logf" | tail -1 | grep -o '[0-9]*' || true)"
      ft="$(grep -aEo 'ft: [0-9]+' "$logf" | tail -1 | grep -o '[0-9]*' || true)"
      summary+=("$t: ${execs:-?} execs, cov ${cov:-?} edges, ft ${ft:-?} features, corpus $(ls "$FUZZ/work/$t" | wc -l)+$(ls "$ROOT/test/fuzz/corpus/$t" | wc -l) files, exit $status")
    else
      node "$FUZZ/js/test/fuzz/js/fuzzer.js" --target "$t" --seconds "$seconds" --corpus "$ROOT/test/fuzz/corpus/$t" \
        --work "$FUZZ/work/$t" --findings "$FUZZ/findings/$t" >"$logf" 2>&1 || status=$?
      summary+=("$(grep -aE 'DONE|CRASH|TIMEOUT|OOM' "$logf" | tail -1 || true) (exit $status)")
    fi
    if (( status != 0 )); then
      failed+=("$t")
      tail -40 "$logf" >&2
    fi
  done
  printf '%s\n' "${summary[@]}"
  if (( ${#failed[@]} )); then
    log "FINDINGS in: ${failed[*]} (inputs in $FUZZ/findings/<target>/, logs in $FUZZ/<target>.log)"
    exit 1
  fi
}

cmd="${1:-run}"
shift || true
case "$cmd" in
  build) build_fuzzers ;;
  replay-build) build_replay ;;
  corpus) build_ts; node "$FUZZ/js/test/fuzz/make-corpus.js" ;;
  ts-build) build_ts ;;
  run) run_all "$@" ;;
  *) die "unknown command $cmd (run, build, replay-build, corpus)" ;;
esac
