#!/usr/bin/env bash
# Executes examples/notebooks/round-trip.ipynb headlessly in the tslab (TypeScript) kernel against the PACKED
# package, the way the README's "Notebooks" section tells a researcher to set it up:
#   npm pack → a fresh project → npm install the tarball and tslab → register the kernel with an ABSOLUTE path to
#   the project's tslab (a bare "tslab" in kernel.json is looked up on PATH and fails with FileNotFoundError when
#   tslab is installed locally) → jupyter nbconvert --execute.
# Fails on any error cell, and checks that the notebook produced its tables and charts. Before that, a notebook
# with a type error must fail, so a passing run means something.
#
# Needs: lib/ and build/ (npm run build; `npm test` has run it in CI), python3 with nbconvert, jupyter_client and
# IPython (tslab's installer imports it): Debian packages jupyter-nbconvert + python3-ipykernel, installed here
# with apt when missing, else from the pip index into .cache/notebook/venv.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/.cache/notebook
TSLAB_VERSION=1.0.22
start=$(date +%s)
mkdir -p "$WORK"
log() { echo "ci-notebook: $*"; }

# ---------------------------------------------------------------- Jupyter
has_jupyter() { "$1" -c 'import nbconvert, jupyter_client, IPython' 2>/dev/null; }
PY=""
for p in /usr/bin/python3 "$WORK/venv/bin/python"; do
  if [ -x "$p" ] && has_jupyter "$p"; then PY=$p; break; fi
done
if [ -z "$PY" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  log "installing jupyter-nbconvert and python3-ipykernel (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq -o DPkg::Lock::Timeout=600 >/dev/null 2>&1 || true
  if apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends jupyter-nbconvert python3-ipykernel >"$WORK/apt.log" 2>&1 \
     && has_jupyter /usr/bin/python3; then
    PY=/usr/bin/python3
  else
    log "apt failed (see $WORK/apt.log)"
  fi
fi
if [ -z "$PY" ]; then
  log "installing nbconvert, ipykernel and jupyter-client into $WORK/venv (pip)"
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install -q nbconvert ipykernel jupyter-client >"$WORK/pip.log" 2>&1 || { cat "$WORK/pip.log"; exit 1; }
  PY=$WORK/venv/bin/python
fi
log "python: $PY (nbconvert $("$PY" -c 'import nbconvert; print(nbconvert.__version__)'))"

# ---------------------------------------------------------------- the package as users get it
[ -f lib/index.js ] && [ -f lib/index.mjs ] || { echo "ci-notebook: lib/ is missing or stale: run npm run build first" >&2; exit 1; }
rm -f "$WORK"/nla-ar-*.tgz
tarball=$(npm pack --ignore-scripts --silent --pack-destination "$WORK")
PROJ=$(mktemp -d "${TMPDIR:-/tmp}/nla-notebook-XXXXXX")
trap '[ -n "${KEEP_NOTEBOOK_PROJECT:-}" ] || rm -rf "$PROJ"' EXIT
cd "$PROJ"
echo '{ "name": "nla-ar-notebook", "version": "1.0.0", "private": true }' > package.json
log "npm install $tarball tslab@$TSLAB_VERSION into $PROJ"
npm install --no-audit --no-fund --prefer-offline --ignore-scripts --loglevel=error "$WORK/$tarball" "tslab@$TSLAB_VERSION" >/dev/null
if [ ! -f "node_modules/nla-ar/prebuilds/linux-x64/nla-ar.glibc.node" ]; then
  # no prebuilds in this checkout (npm run prebuildify makes them): the local build stands in, where node-gyp-build looks first
  mkdir -p node_modules/nla-ar/build/Release
  cp "$ROOT/build/Release/nla_ar.node" node_modules/nla-ar/build/Release/
fi

# ---------------------------------------------------------------- the kernel, with an absolute path
TSLAB_BIN=$PROJ/node_modules/.bin/tslab
node_modules/.bin/tslab install --python="$PY" --binary="$TSLAB_BIN" --prefix="$PROJ/jupyter" >/dev/null
export JUPYTER_PATH=$PROJ/jupyter/share/jupyter JUPYTER_RUNTIME_DIR=$PROJ/runtime JUPYTER_CONFIG_DIR=$PROJ/config
KERNEL_JSON=$PROJ/jupyter/share/jupyter/kernels/tslab/kernel.json
"$PY" - "$KERNEL_JSON" "$TSLAB_BIN" <<'EOF'
import json, sys
argv = json.load(open(sys.argv[1]))["argv"]
assert argv[0] == sys.argv[2], f"kernel.json starts tslab as {argv[0]!r}, expected the absolute {sys.argv[2]!r}"
EOF

run_nb() {  # notebook, output name
  "$PY" -m nbconvert --to notebook --execute --ExecutePreprocessor.kernel_name=tslab --ExecutePreprocessor.timeout=300 \
    --output "$2" "$1" >"$PROJ/$2.log" 2>&1
}

# ---------------------------------------------------------------- negative control: an error cell must fail the run
"$PY" - <<'EOF'
import json
cells = [{"cell_type": "code", "execution_count": None, "id": "type-error", "metadata": {}, "outputs": [], "source": ["const n: number = 'not a number';"]}]
json.dump({"cells": cells, "metadata": {"kernelspec": {"name": "tslab", "display_name": "TypeScript", "language": "typescript"}},
           "nbformat": 4, "nbformat_minor": 5}, open("broken.ipynb", "w"))
EOF
if run_nb broken.ipynb broken-out.ipynb; then
  echo "ci-notebook: a notebook with a type error executed without failing: the error check does not work" >&2
  exit 1
fi
grep -q "CellExecutionError" "$PROJ/broken-out.ipynb.log" && grep -q "const n: number = 'not a number';" "$PROJ/broken-out.ipynb.log" ||
  { echo "ci-notebook: the failing run did not fail on the type error cell:" >&2; cat "$PROJ/broken-out.ipynb.log" >&2; exit 1; }

# ---------------------------------------------------------------- the notebook
cp "$ROOT/examples/notebooks/round-trip.ipynb" .
log "executing round-trip.ipynb"
if ! run_nb round-trip.ipynb executed.ipynb; then
  cat "$PROJ/executed.ipynb.log" >&2
  echo "ci-notebook: round-trip.ipynb failed" >&2
  exit 1
fi
"$PY" - executed.ipynb <<'EOF'
import json, sys
nb = json.load(open(sys.argv[1]))
code = [c for c in nb["cells"] if c["cell_type"] == "code"]
outs = [o for c in code for o in c.get("outputs", [])]
errors = [o for o in outs if o["output_type"] == "error"]
assert not errors, f"error outputs: {errors}"
stderr = [''.join(o["text"]) for o in outs if o["output_type"] == "stream" and o["name"] == "stderr"]
assert not stderr, f"stderr output: {stderr}"
# tslab leaves execution_count empty: every code cell but the last (close) must have produced output
silent = [''.join(c["source"])[:60] for c in code[:-1] if not c.get("outputs")]
assert not silent, f"code cells without output: {silent}"
text = '\n'.join(''.join(o.get("text", "")) + ''.join(o.get("data", {}).get("text/plain", "")) for o in outs)
svgs = [o for o in outs if "image/svg+xml" in o.get("data", {})]
tables = [o for o in outs if "<table" in ''.join(o.get("data", {}).get("text/html", ""))]
assert len(svgs) >= 3, f"expected 3 charts, got {len(svgs)}"
assert len(tables) >= 3, f"expected 3 tables, got {len(tables)}"
assert "ActivationVector(" in text, "vectors did not print as ActivationVector summaries"
assert "true" in text, "the default-import cell did not print true"
print(f"ci-notebook: {len(code)} code cells ran, {len(tables)} tables, {len(svgs)} charts, no errors")
EOF
cp executed.ipynb "$WORK/round-trip.executed.ipynb"
log "ok in $(( $(date +%s) - start )) s (executed notebook: .cache/notebook/round-trip.executed.ipynb)"
