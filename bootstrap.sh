#!/usr/bin/env bash
# One-command set-up for rnnlab, idempotent.
#   bash bootstrap.sh demo   -> create .venv, install, run the offline demo
#   bash bootstrap.sh test   -> create .venv, install, run the whole test suite
#   bash bootstrap.sh setup  -> only create .venv and install
#   bash bootstrap.sh docs   -> create .venv, install, build the documentation site into site/
set -euo pipefail
cd "$(dirname "$0")"
VENV=${RNNLAB_VENV:-.venv}
PY=${PYTHON:-python3}

setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        "$PY" -m venv "$VENV"
    fi
    # Re-install only when the project metadata changed since the last install.
    local stamp="$VENV/.rnnlab-installed"
    local want
    want=$(sha1sum pyproject.toml | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        # Pin torch first: a loose requirement could pull a multi-GB CUDA build. Where pip is
        # not already pointed at a CPU wheel, set RNNLAB_TORCH_INDEX, for example to
        # https://download.pytorch.org/whl/cpu, to take PyTorch's CPU-only build.
        "$VENV/bin/pip" install --quiet --disable-pip-version-check \
            ${RNNLAB_TORCH_INDEX:+--index-url "$RNNLAB_TORCH_INDEX"} "torch==2.13.0"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check -e ".[test]"
        echo "$want" > "$stamp"
    fi
}

cmd=${1:-demo}
shift || true
case "$cmd" in
    setup) setup ;;
    demo)
        setup
        # The quick start may be run again: it replaces its own earlier demo run in runs/demo
        # (only rnnlab's files there; a folder of other files is still refused).
        exec "$VENV/bin/rnnlab" demo --overwrite "$@" ;;
    test)
        setup
        export RNNLAB_DATA=${RNNLAB_DATA:-$(cd .. && pwd)/shared/data}
        exec "$VENV/bin/python" -m pytest "$@" ;;
    docs)
        setup
        # The test extra carries the docs tools (mkdocs, mkdocs-material, mkdocstrings[python]).
        NO_MKDOCS_2_WARNING=1 "$VENV/bin/python" -m mkdocs build --strict --site-dir site "$@"
        echo "documentation built: $(pwd)/site/index.html (serve it with: $VENV/bin/mkdocs serve)" ;;
    *) echo "usage: bash bootstrap.sh [demo|test|setup|docs]" >&2; exit 2 ;;
esac
