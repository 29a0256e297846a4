#!/usr/bin/env bash
# Everything a GPU machine should check, in one command and one table (<= 8 minutes on a GPU):
# the tests marked `cuda`, throughput against the bare loop and the textbook loop, and a 3-minute
# emoji run at 64 px with its FD. See bench/device.py for the parts.
#   bash bench/device.sh            # on a GPU machine
#   bash bench/device.sh --smoke    # the same parts on the CPU, a few steps each (CI runs this)
# EMOJI=FILE.zip picks the image set; OUT=DIR keeps the outputs; PYTHON=... a Python with ganrun and its
# test extras installed (default: the project's .venv, made by `make install-test` when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  make -s install-test >/dev/null
  PYTHON=.venv/bin/python
fi
export PYTHONUNBUFFERED=1
exec "$PYTHON" bench/device.py "$@"
