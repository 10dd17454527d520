#!/usr/bin/env bash
# The GPU suite (issue 18) in one command; the figures are printed and written as JSON:
#   bash benchmarks/gpu_suite.sh [--dry-run] [options of benchmarks/gpu_suite.py]
# Its Python: the project's .venv where `make setup` made one; else python3 with torch and
# torchvision (a GPU machine's own), with this tree's package on PYTHONPATH and our few other
# needs installed from the wheels in .gpu/whl, which `make gpu-carry` downloads (with the BCCD
# export) on a machine with a network, for a GPU machine without one.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -x .venv/bin/python ]]; then
  py=.venv/bin/python
else
  py=python3
  if compgen -G ".gpu/whl/*.whl" > /dev/null; then
    site=$(mktemp -d /tmp/gpu-suite-site.XXXXXX)
    trap 'rm -rf "$site"' EXIT
    "$py" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check --target "$site" .gpu/whl/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
missing=$("$py" -c '
import importlib.util
need = "torch torchvision PIL numpy yaml click tqdm tensorboard faster_coco_eval orjson imagesize defusedxml"
print(" ".join(m for m in need.split() if importlib.util.find_spec(m) is None))')
if [[ -n "$missing" ]]; then
  echo "gpu_suite: $py lacks $missing: run \`make setup\`, or \`make gpu-carry\` on a machine with a network" \
    "and bring .gpu/ along (its wheels are installed from there)" >&2
  exit 2
fi
export PYTHONUNBUFFERED=1
"$py" benchmarks/gpu_suite.py "$@"
