#!/usr/bin/env bash
# Creates the two anchor venvs that `rtmirror eval --anchors` runs (not part of the shipped
# package): basic-pitch 0.4.0 (ONNX backend) and PESTO 2 (pesto-pitch 2.0.1, torch 2.13.0 CPU).
# Usage: tools/anchors/setup.sh [ROOT]   (ROOT defaults to /work/anchors)
# While a venv is being made, ROOT/NAME.CREATING exists; another run waits for it to go.
set -euo pipefail
root="${1:-/work/anchors}"
mkdir -p "$root"
marker=""
trap '[ -n "$marker" ] && rm -f "$marker"' EXIT

make_venv() {  # name, module to import, pip requirements...
    local name="$1" module="$2"; shift 2
    marker="$root/$name.CREATING"
    while [ -e "$marker" ]; do echo "waiting: $marker"; sleep 10; done
    if "$root/$name/bin/python" -c "import $module" 2>/dev/null; then
        echo "$name: ready"; marker=""; return
    fi
    touch "$marker"
    [ -x "$root/$name/bin/python" ] || python3.11 -m venv "$root/$name"
    "$root/$name/bin/pip" install -q "$@"
    if [ "$name" = pesto ]; then
        # PyPI's torchaudio (pesto imports it, uses only its pure-Python part here) is built
        # against CUDA torch; its compiled extension cannot load beside the CPU torch 2.13.0.
        # torchaudio skips the extension when its files are absent.
        rm -f "$root/pesto"/lib/python3.11/site-packages/torchaudio/lib/*.so
    fi
    "$root/$name/bin/python" -c "import $module"
    rm -f "$marker"; marker=""
    echo "$name: created"
}

make_venv basic-pitch basic_pitch "basic-pitch[onnx]==0.4.0" onnxruntime soundfile
make_venv pesto pesto "torch==2.13.0" "pesto-pitch==2.0.1" soundfile
