#!/usr/bin/env bash
# Creates (idempotently) the venv that supplies libtorch to the `torch` feature: the PyPI `torch`
# wheel whose version the pinned `tch` release expects (tch 0.24 ↔ torch 2.11.0).
#
#   source <(bash scripts/setup-torch.sh --env)   # exports LIBTORCH_USE_PYTORCH, VIRTUAL_ENV, PATH, LD_LIBRARY_PATH
#   cargo test --features torch
#
# The venv lives outside the checkout (default ~/.cache/hcs/venv-torch-2.11.0, override with
# HCS_TORCH_VENV) so clean clones and CI runs on the same machine share one multi-GB install.
set -euo pipefail
TORCH_VERSION=2.11.0
VENV="${HCS_TORCH_VENV:-$HOME/.cache/hcs/venv-torch-$TORCH_VERSION}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" >&2
fi
have=$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)
if [ "$have" != "$TORCH_VERSION" ]; then
  echo "installing torch==$TORCH_VERSION into $VENV (one time, a few GB)" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check "torch==$TORCH_VERSION" >&2
fi
lib=$("$VENV/bin/python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
if [ "${1:-}" = "--env" ]; then
  echo "export LIBTORCH_USE_PYTORCH=1"
  echo "export VIRTUAL_ENV='$VENV'"
  echo "export PATH='$VENV/bin':\"\$PATH\""
  echo "export LD_LIBRARY_PATH='$lib'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
else
  echo "torch $TORCH_VERSION ready in $VENV (libs: $lib)" >&2
fi
