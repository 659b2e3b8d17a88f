#!/usr/bin/env bash
# Install Google Research Football (gfootball 2.10.2) and its build dependencies.
# Idempotent: when the engine already imports, it does nothing; pip's wheel cache makes a
# reinstall on the same machine take seconds.
set -euo pipefail
PYTHON=${PYTHON:-python3}
# The engine's build runs "python3" from PATH: put the chosen interpreter's directory first,
# so that PYTHON=venv/bin/python works without activating the virtual environment.
PYTHON_BIN=$(command -v "$PYTHON")
PATH="$(dirname "$PYTHON_BIN"):$PATH"
if [ ! -e "$(dirname "$PYTHON_BIN")/python3" ]; then
  # a directory whose interpreter is not called python3: give the build one that is
  shim=$(mktemp -d)
  ln -s "$PYTHON_BIN" "$shim/python3"
  PATH="$shim:$PATH"
fi
export PATH
if "$PYTHON" -c "import gfootball.env" >/dev/null 2>&1; then
  echo "gfootball is already installed"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends build-essential cmake libgl1-mesa-dev \
  libegl-dev libsdl2-dev libsdl2-image-dev libsdl2-ttf-dev libsdl2-gfx-dev \
  libboost-python-dev libboost-system-dev libboost-thread-dev libboost-filesystem-dev >/dev/null
# Its build script imports psutil (invisible to an isolated build), it imports six without
# declaring it, and it needs the old gym API (0.26 breaks reset; 0.25.2 works).
"$PYTHON" -m pip install -q psutil six "gym==0.25.2"
"$PYTHON" -m pip install -q --no-build-isolation gfootball==2.10.2
"$PYTHON" -c "import gfootball.env" && echo "gfootball installed"
