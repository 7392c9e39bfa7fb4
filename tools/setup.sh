#!/usr/bin/env bash
# Set up the development environment: .venv at the repository root with torch (CPU),
# mmengine, mmcv (built from source once, then reused from a cache), mmdet, pytest and
# this package in editable mode. Idempotent: a second run checks and returns in seconds.
#
# Environment knobs:
#   SETUP_PYTHON=/path/to/python   interpreter the venv is made from (default: python3).
#                                  Its own packages are visible in .venv (--system-site-packages),
#                                  so an already installed CUDA torch is used instead of the CPU pin.
#   MMDET_LOSSES_CACHE=DIR         where the built mmcv wheel is kept (default ~/.cache/mmdet_losses)
#   MAX_JOBS=N                     parallel compile jobs for the mmcv build (default: cores)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
CACHE="${MMDET_LOSSES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmdet_losses}"
TORCH_VERSION=2.13.0
MMCV_VERSION=2.1.0
STEP="start"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
fail() { printf '\033[31m[setup] FAILED at step "%s"\033[0m (see the output above)\n' "$STEP" >&2; }
trap fail ERR

# pip, without the warnings about this machine's empty local index folders
pip_q() {
    "$PY" -m pip install --disable-pip-version-check --progress-bar off -q "$@" \
        2> >(grep -v "Location 'file:" >&2)
}

# --- 1. the virtual environment ---------------------------------------------------------------
STEP="create .venv"
if [[ ! -x "$PY" ]]; then
    base_python="${SETUP_PYTHON:-python3}"
    say "creating $VENV from $base_python"
    if [[ -n "${SETUP_PYTHON:-}" ]]; then
        "$base_python" -m venv --system-site-packages "$VENV"
    else
        "$base_python" -m venv "$VENV"
    fi
fi

# What is already installed, as 'name==version' lines, to decide what to skip.
installed() {
    "$PY" - "$@" <<'PYEOF'
import sys
from importlib import metadata
for name in sys.argv[1:]:
    try:
        print(f"{name}=={metadata.version(name)}")
    except metadata.PackageNotFoundError:
        print(f"{name}==")
PYEOF
}
have() {  # have NAME [VERSION-PREFIX]: true if NAME is installed (at a version starting with the prefix)
    local line; line="$(installed "$1")"; local v="${line#*==}"
    [[ -n "$v" && "$v" == ${2:-}* ]]
}

# --- 2. torch ---------------------------------------------------------------------------------
STEP="install torch"
if have torch; then
    say "torch $(installed torch | cut -d= -f3) already present"
else
    say "installing torch==$TORCH_VERSION (CPU)"
    pip_q "torch==$TORCH_VERSION"
fi

# --- 3. pure-Python requirements --------------------------------------------------------------
STEP="install requirements"
unmet_requirements() {  # prints the requirement lines the venv does not satisfy
    "$PY" - "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" <<'PYEOF'
import sys
from importlib import metadata
from packaging.requirements import Requirement
for path in sys.argv[1:]:
    for line in open(path):
        line = line.split('#')[0].strip()
        if not line:
            continue
        req = Requirement(line)
        try:
            ok = req.specifier.contains(metadata.version(req.name), prereleases=True)
        except metadata.PackageNotFoundError:
            ok = False
        if not ok:
            print(line)
PYEOF
}
if [[ -z "$(unmet_requirements 2>/dev/null || echo unknown)" ]]; then
    say "requirements already met (mmengine, mmdet, pytest, ...)"
else
    say "installing requirements (mmengine, pytest, ...)"
    pip_q -r "$ROOT/requirements.txt" -r "$ROOT/requirements-dev.txt"
fi

# --- 4. mmcv with its ops, from a cached wheel or built once ----------------------------------
STEP="mmcv $MMCV_VERSION"
mmcv_ok() { "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" >/dev/null 2>&1; }
if mmcv_ok; then
    say "mmcv $MMCV_VERSION with ops already present"
else
    tag="$("$PY" -c "import sys, torch; print(f'py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__}')")"
    wheel_dir="$CACHE/mmcv-$MMCV_VERSION-$tag"
    wheel="$(ls "$wheel_dir"/mmcv-*.whl 2>/dev/null | head -n1 || true)"
    if [[ -z "$wheel" ]]; then
        STEP="build mmcv $MMCV_VERSION wheel"
        say "no cached mmcv wheel for $tag: building it once (about 10-15 minutes on 2 cores)"
        build_venv="$(mktemp -d)/build-venv"
        # A throwaway venv: old setuptools (mmcv's setup.py needs pkg_resources) must not
        # linger in .venv, where torch wants a new one. It sees .venv's torch through a .pth.
        base="$("$PY" -c 'import sys; print(sys._base_executable)')"
        "$base" -m venv "$build_venv"
        site_build="$("$build_venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
        "$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > "$site_build/zz_dot_venv.pth"
        "$build_venv/bin/python" -m pip install --disable-pip-version-check -q "setuptools<70" wheel ninja
        mkdir -p "$wheel_dir"
        log="$wheel_dir/build.log"
        export MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" FORCE_CUDA="${FORCE_CUDA:-0}"
        start=$(date +%s)
        ninja_step='^[[:space:]]*\[([0-9]+)/([0-9]+)\]'
        # Progress: ninja prints "[k/N] ..." per compiled file; show those lines with the time.
        set +e
        "$build_venv/bin/python" -m pip wheel -v --no-build-isolation --no-deps \
            "mmcv==$MMCV_VERSION" -w "$wheel_dir" 2>&1 | tee "$log" | while IFS= read -r line; do
                if [[ "$line" =~ $ninja_step ]]; then
                    printf '[setup] mmcv build %s/%s  (%ss)\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "$(( $(date +%s) - start ))"
                elif [[ "$line" =~ ^(Collecting|Downloading|Building\ wheel|Created\ wheel|ERROR|error:) ]]; then
                    printf '[setup] %s\n' "$line"
                fi
            done
        status=${PIPESTATUS[0]}
        set -e
        rm -rf "$(dirname "$build_venv")"
        if [[ $status -ne 0 ]]; then
            tail -n 40 "$log" >&2
            say "the mmcv build failed; full log: $log"
            false
        fi
        wheel="$(ls "$wheel_dir"/mmcv-*.whl | head -n1)"
        say "built $wheel in $(( $(date +%s) - start ))s"
    else
        say "reusing cached $wheel"
    fi
    STEP="install mmcv wheel"
    pip_q "$wheel"
    mmcv_ok
fi

# --- 5. this package, editable, with its C++ kernels -------------------------------------------
STEP="install mmdet_losses (editable)"
# (checked from / so that the repository itself is not on sys.path)
if (cd / && "$PY" -c "import mmdet_losses, os, sys; sys.exit(0 if os.path.realpath(mmdet_losses.__file__).startswith(os.path.realpath('$ROOT')) else 1)") >/dev/null 2>&1; then
    say "mmdet_losses already installed in editable mode"
else
    say "installing mmdet_losses in editable mode"
    # The kernels are compiled once, in place, by the next step, not in pip's build folder.
    (cd "$ROOT" && MMDET_LOSSES_NO_EXT=1 pip_q --no-deps --no-build-isolation -e .)
fi
# Build the C++ kernels in place; rebuilds only when a source is newer than its build.
STEP="build C++ kernels"
say "building the C++ kernels (about 4 minutes on 2 cores the first time; a no-op when up to date)"
(cd "$ROOT" && "$PY" setup.py -q build_ext --inplace 2> >(grep -v "Warning\|warn\|^ *!!\|^ *\*\*\|^$" >&2) >/dev/null)

STEP="check imports"
"$PY" -c "import torch, mmengine, mmcv, mmdet, mmdet_losses; print('[setup] ready: torch', torch.__version__, '| mmengine', mmengine.__version__, '| mmcv', mmcv.__version__, '| mmdet', mmdet.__version__)"
