#!/usr/bin/env bash
# Installs what relaydesk needs on a fresh Debian/Ubuntu machine with Python 3.11:
# RabbitMQ (apt, when missing), the virtual environment, and with --test Chromium and the
# browser tests' JavaScript (axe-core, from tests/browser/package-lock.json, with npm).
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_TEST=0
[[ "${1:-}" == "--test" ]] && WITH_TEST=1

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
apt_packages=()
command -v rabbitmq-server >/dev/null 2>&1 || apt_packages+=(rabbitmq-server)
# The browser tests run Debian's headless shell of Chromium (tests/browser/conftest.py).
if [[ $WITH_TEST -eq 1 ]] && [[ ! -x /usr/bin/chromium-headless-shell ]]; then
  apt_packages+=(chromium-headless-shell)
fi
if [[ $WITH_TEST -eq 1 ]] && ! command -v npm >/dev/null 2>&1; then apt_packages+=(npm); fi
python3 -m venv --help >/dev/null 2>&1 || apt_packages+=(python3-venv)
if (( ${#apt_packages[@]} )); then
  echo "[bootstrap] apt-get install ${apt_packages[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

# RabbitMQ: start it if it is not running, with the plugins relaydesk uses.
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  echo "[bootstrap] starting RabbitMQ"
  $SUDO rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 120); do (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && break; sleep 0.5; done
  $SUDO rabbitmqctl await_startup --timeout 60 >/dev/null 2>&1 || true
fi
# rabbitmq-plugins starts an Erlang VM (about 10 s): only when the stream (5552) or
# management (15672) listener is missing, i.e. once per fresh node.
if ! (exec 3<>/dev/tcp/127.0.0.1/5552) 2>/dev/null || ! (exec 3<>/dev/tcp/127.0.0.1/15672) 2>/dev/null; then
  $SUDO rabbitmq-plugins enable rabbitmq_stream rabbitmq_management >/dev/null 2>&1 || true
fi
for _ in $(seq 1 120); do (exec 3<>/dev/tcp/127.0.0.1/15672) 2>/dev/null && break; sleep 0.5; done

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [[ ! -x .venv/bin/python ]]; then
  echo "[bootstrap] creating .venv"
  "$PY" -m venv .venv
fi
extras="embedded"
[[ $WITH_TEST -eq 1 ]] && extras="embedded,test,bench"
stamp=".venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)-${extras//,/_}"
if [[ ! -f "$stamp" ]]; then
  echo "[bootstrap] installing relaydesk[$extras] into .venv"
  # uv (from PyPI) installs the same packages as pip, resolved the same way, in seconds: it
  # links them from its cache where pip unpacks and compiles every wheel again (measured from
  # a clean clone: 48 s of bootstrap with pip, 11 s with uv, most of it installing uv).
  # pip does it where uv cannot be had or fails.
  if ! { .venv/bin/pip install -q uv >/dev/null 2>&1 \
      && .venv/bin/uv pip install --python .venv/bin/python -q -e ".[$extras]"; }; then
    echo "[bootstrap] installing with pip instead of uv"
    .venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
    # grep only filters pip's noisy location warning; with pipefail the pipeline's status is
    # pip's, so a failed install stops here instead of leaving a half-installed .venv stamped.
    if ! .venv/bin/pip install -q -e ".[$extras]" 2>&1 | { grep -v "^WARNING: Location" || true; }; then
      echo "[bootstrap] ERROR: pip could not install relaydesk[$extras] into .venv (see pip's output above); fix it and run this script again" >&2
      exit 1
    fi
  fi
  .venv/bin/python -c "import relaydesk, aio_pika, pymongo" 
  touch "$stamp"
fi

# The browser tests' axe-core: the exact versions of the lock file, into tests/browser only.
if [[ $WITH_TEST -eq 1 ]]; then
  npm_stamp="tests/browser/node_modules/.installed-$(sha1sum tests/browser/package-lock.json | cut -c1-12)"
  if [[ ! -f "$npm_stamp" ]]; then
    echo "[bootstrap] npm ci in tests/browser (axe-core)"
    if ! npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error >/dev/null; then
      echo "[bootstrap] ERROR: npm could not install tests/browser's packages (axe-core); fix it and run this script again" >&2
      exit 1
    fi
    touch "$npm_stamp"
  fi
fi
