#!/usr/bin/env bash
# The Python reference stack of test/hf-reference.test.ts: a venv in .cache/hf-venv with torch (CPU),
# transformers, peft, safetensors, tokenizers and numpy, installed from the wheels on this machine only
# (/opt/wheels, /opt/pypi/simple, /opt/pypi-more/simple; no network).
#
#   bash scripts/ci-hf.sh        # idempotent: a no-op when the venv already holds these pins
#
# Where no wheels are on disk it says so and exits 0: the test then skips with one line saying why.
# Where the wheels are there but the install fails, it exits 1 (CI should not quietly lose the reference).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NLA_HF_VENV:-$ROOT/.cache/hf-venv}"   # override only to try the script elsewhere
# The versions the reference set was verified with (docs/verification.md).
PINS=("torch==2.13.0+cpu" "transformers==5.18.0" "peft==0.21.0" "safetensors==0.8.0" "tokenizers==0.23.2" "numpy==2.4.6")
STAMP="$VENV/.nla-pins"

log() { echo "ci-hf: $*"; }

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "${PINS[*]}" && -x "$VENV/bin/python" ]]; then
  log "venv up to date ($VENV)"
  exit 0
fi

SOURCES=()
[[ -d /opt/wheels ]] && SOURCES+=(--find-links /opt/wheels)
[[ -d /opt/pypi/simple ]] && SOURCES+=(--index-url file:///opt/pypi/simple)
[[ -d /opt/pypi-more/simple ]] && SOURCES+=(--extra-index-url file:///opt/pypi-more/simple)
if [[ ! -d /opt/pypi/simple && ! -d /opt/wheels ]]; then
  log "no Python wheels on this machine (/opt/wheels, /opt/pypi/simple): the Hugging Face reference tests will skip"
  exit 0
fi
if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  log "python3 with venv/ensurepip not found: the Hugging Face reference tests will skip"
  exit 0
fi
# no --index-url at all would make pip try pypi.org first and wait on the unreachable network
[[ -d /opt/pypi/simple ]] || SOURCES+=(--no-index)

start=$(date +%s)
rm -rf "$VENV"
python3 -m venv "$VENV"
log "installing ${PINS[*]} from the local wheels"
PIPLOG="$ROOT/.cache/hf-venv-pip.log"
if ! "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input --retries 0 --timeout 5 \
     "${SOURCES[@]}" "${PINS[@]}" >"$PIPLOG" 2>&1 \
   || ! "$VENV/bin/python" -c 'import torch, transformers, peft, safetensors, tokenizers, numpy' 2>>"$PIPLOG"; then
  grep -v -E "^WARNING: Location '.*' is ignored" "$PIPLOG" | tail -n 20 >&2 || true
  rm -rf "$VENV"
  log "ERROR: installing the pinned wheels failed (log: $PIPLOG)"
  exit 1
fi
echo "${PINS[*]}" > "$STAMP"
log "venv ready in $(( $(date +%s) - start )) s: $("$VENV/bin/python" -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)')"
