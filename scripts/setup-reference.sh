#!/usr/bin/env bash
# Sets up the llama.cpp reference harness used by the differential tests.
#
#   scripts/setup-reference.sh          # idempotent; a no-op (well under a second) when up to date
#
# Into .cache/reference/ (git-ignored) it
#   1. `npm pack`s node-llama-cpp@3.22.1 (llama.cpp v0.5.0 source as a git bundle: headers, gguf-py, vocab
#      test files) and @node-llama-cpp/linux-x64@3.22.1 (prebuilt CPU libllama/libggml + CPU variant backends),
#   2. extracts both and `git clone`s the bundle into .cache/reference/llama.cpp,
#   3. builds test/reference/llama_ref.cpp -> .cache/reference/bin/llama_ref (we only CALL llama.cpp),
#   4. builds every test/reference/*_check.cpp against the engine (every .cc under native/ but native/addon/) + ggml/llama
#      -> .cache/reference/bin/<name>. An engine source that does not compile yet is left out (with a warning);
#      a check program that then fails to link is skipped with a warning instead of failing the script.
set -euo pipefail

NLC_VERSION=3.22.1
LLAMA_TAG=v0.5.0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REF="$ROOT/.cache/reference"
DL="$REF/dl"
BIN="$REF/bin"
OBJ="$REF/obj"
SRC="$REF/llama.cpp"                                   # llama.cpp source tree (headers, gguf-py, models/)
LIBDIR="$REF/lx/package/bins/linux-x64"                # prebuilt libs + libggml-cpu-*.so variants
STAMP="$REF/.fetched-$NLC_VERSION"
CXX="${CXX:-g++}"

die() { echo "setup-reference: ERROR: $*" >&2; exit 1; }
log() { echo "setup-reference: $*"; }

mkdir -p "$REF" "$BIN" "$OBJ"

# ---------------------------------------------------------------- 1+2: fetch and extract (once)
if [[ ! -f "$STAMP" ]]; then
  rm -rf "$DL" "$REF/nlc" "$REF/lx" "$SRC"
  mkdir -p "$DL" "$REF/nlc" "$REF/lx"
  for spec in "node-llama-cpp@$NLC_VERSION" "@node-llama-cpp/linux-x64@$NLC_VERSION"; do
    log "npm pack $spec"
    (cd "$DL" && npm pack "$spec" >/dev/null 2>"$DL/npm-pack.log") \
      || { cat "$DL/npm-pack.log" >&2; die "download of $spec from the npm registry failed (network? registry?)"; }
  done
  tar -xzf "$DL/node-llama-cpp-$NLC_VERSION.tgz" -C "$REF/nlc" || die "cannot extract node-llama-cpp tarball"
  tar -xzf "$DL/node-llama-cpp-linux-x64-$NLC_VERSION.tgz" -C "$REF/lx" || die "cannot extract linux-x64 tarball"
  BUNDLE="$REF/nlc/package/llama/gitRelease.bundle"
  [[ -f "$BUNDLE" ]] || die "no llama/gitRelease.bundle inside node-llama-cpp@$NLC_VERSION"
  log "git clone $BUNDLE"
  git -c advice.detachedHead=false clone -q "$BUNDLE" "$SRC" || die "git clone of the llama.cpp bundle failed"
  [[ -f "$LIBDIR/libllama.$LLAMA_TAG.so" ]] || die "missing $LIBDIR/libllama.$LLAMA_TAG.so"
  [[ -f "$SRC/include/llama.h" ]] || die "missing $SRC/include/llama.h"
  rm -f "$DL"/*.tgz                                      # the extracted trees are all we need
  touch "$STAMP"
fi

INCS=(-I"$SRC/include" -I"$SRC/ggml/include")
# Absolute rpath: the binaries find libllama/libggml there; libggml then loads the best libggml-cpu-*.so
# variant from the same directory at runtime (llama_ref passes that directory to
# ggml_backend_load_all_from_path; see ggml-backend-reg.cpp).
LIBS=(-L"$LIBDIR" -l:libllama.$LLAMA_TAG.so -l:libggml.$LLAMA_TAG.so -l:libggml-base.so
      -Wl,-rpath,"$LIBDIR" -ldl -pthread)
CXXFLAGS=(-O2 -std=c++17 -pthread -Wall -Wno-unused-function)

# newer_than OUT IN... : true when OUT is missing or older than any IN
newer_than() { local out="$1"; shift; [[ ! -e "$out" ]] && return 0
  local f; for f in "$@"; do [[ "$f" -nt "$out" ]] && return 0; done; return 1; }

# ---------------------------------------------------------------- 3: llama_ref
REF_SRC="$ROOT/test/reference/llama_ref.cpp"
[[ -f "$REF_SRC" ]] || die "missing $REF_SRC"
if newer_than "$BIN/llama_ref" "$REF_SRC" "$STAMP"; then
  log "compiling llama_ref"
  "$CXX" "${CXXFLAGS[@]}" "${INCS[@]}" "$REF_SRC" -o "$BIN/llama_ref.tmp" "${LIBS[@]}" \
    || die "compiling $REF_SRC failed"
  mv "$BIN/llama_ref.tmp" "$BIN/llama_ref"
fi

# ---------------------------------------------------------------- 4: *_check programs
shopt -s nullglob
CHECKS=("$ROOT"/test/reference/*_check.cpp)
if (( ${#CHECKS[@]} )); then
  # The engine's sources: every .cc under native/ except the Node binding (native/addon/), as in CMakeLists.txt.
  mapfile -t CCS < <(cd "$ROOT" && find native -name '*.cc' -not -path 'native/addon/*' | sort)
  mapfile -t HDRS < <(cd "$ROOT" && find native \( -name '*.h' -o -name '*.inc' \) -not -path 'native/addon/*' | sed "s|^|$ROOT/|")
  OBJS=()
  failed=()
  jobs_max="$(nproc 2>/dev/null || echo 2)"
  compile_obj() {  # compile_obj SRC OBJ: leaves OBJ.log non-empty (and no OBJ) on failure
    if "$CXX" "${CXXFLAGS[@]}" -I"$ROOT/native" "${INCS[@]}" -c "$1" -o "$2.tmp" 2>"$2.log"; then
      mv "$2.tmp" "$2"; rm -f "$2.log"
    else
      rm -f "$2" "$2.tmp"; [[ -s "$2.log" ]] || echo "compiler failed" >"$2.log"
    fi
  }
  objname() { local r="${1#native/}"; echo "$OBJ/${r//\//_}"; }
  for rel in "${CCS[@]}"; do
    cc="$ROOT/$rel"
    o="$(objname "${rel%.cc}").o"
    if newer_than "$o" "$cc" "${HDRS[@]}" "$STAMP"; then
      log "compiling $rel"
      rm -f "$o"
      while (( $(jobs -rp | wc -l) >= jobs_max )); do wait -n || true; done
      compile_obj "$cc" "$o" &
    fi
  done
  wait
  for rel in "${CCS[@]}"; do
    o="$(objname "${rel%.cc}").o"
    if [[ -f "$o" ]]; then OBJS+=("$o"); else
      failed+=("$rel")
      echo "setup-reference: WARNING: $rel does not compile (see $o.log)" >&2
    fi
  done
  for chk in "${CHECKS[@]}"; do
    name="$(basename "${chk%.cpp}")"
    if newer_than "$BIN/$name" "$chk" "${OBJS[@]}" "${HDRS[@]}" "$STAMP"; then
      log "compiling $name"
      # LLAMA_REF_LIBDIR: pass it to ggml_backend_load_all_from_path() if the check calls llama.cpp/ggml compute
      if "$CXX" "${CXXFLAGS[@]}" -DLLAMA_REF_LIBDIR="\"$LIBDIR\"" -I"$ROOT/native" "${INCS[@]}" "$chk" "${OBJS[@]}" -o "$BIN/$name" \
           "${LIBS[@]}" 2>"$BIN/$name.log"; then
        rm -f "$BIN/$name.log"
      else
        rm -f "$BIN/$name"
        echo "setup-reference: WARNING: skipping $name: build failed (see $BIN/$name.log)${failed:+; not compiled: ${failed[*]}}" >&2
      fi
    fi
  done
fi

log "llama.cpp source : $SRC"
log "prebuilt libs    : $LIBDIR"
log "vocab (gemma-4)  : $SRC/models/ggml-vocab-gemma-4.gguf"
log "gguf-py          : PYTHONPATH=$SRC/gguf-py"
log "binaries         : $(cd "$BIN" && ls -1 | grep -v '\.log$' | tr '\n' ' ')"
