#!/usr/bin/env bash
# Runs the whole test suite against real RabbitMQ and a real MongoDB-protocol server.
#
# Most of a test's time is spent waiting on the broker, the database and sockets, not
# computing, so the tests run in parallel worker processes (pytest-xdist;
# RELAYDESK_TEST_WORKERS of them, default 6: with 4 the two cores were about half idle; a
# module's tests stay together on one worker, so a system a module shares is built once).
# No test holds a wall-clock bound a busy machine would break (speed lives in
# `relaydesk bench`), and a test that stops its broker stops a node of its own
# (tests/conftest.py's own_broker), so nothing needs the machine to itself.
#
# Pytest arguments are passed on (`bash scripts/test.sh tests/foundation -q`). With your own
# `-n`, or with RELAYDESK_TEST_WORKERS=0, it is one plain pytest run with exactly your
# arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test
# Bytecode caches on, whatever the environment says: with PYTHONDONTWRITEBYTECODE set, every
# worker rewrote the asserts of all ~400 test modules from source at each collection (8 s
# of CPU each, 4 s with the cache), and every subprocess a test starts compiled again.
unset PYTHONDONTWRITEBYTECODE
PYTEST=(.venv/bin/python -m pytest)

workers=${RELAYDESK_TEST_WORKERS:-6}
for arg in "$@"; do
  case "$arg" in
    -n | -n* | --numprocesses*) workers=0 ;;
  esac
done
if [[ $workers == 0 ]]; then
  exec "${PYTEST[@]}" "$@"
fi
# Every worker collects the whole suite; on a fresh clone each would also rewrite the asserts
# of every test module at once (2 cores, 6 workers: ~20 s). One collection first writes the
# rewritten modules once, and the workers read them (each worker's collection 8 -> 3.5 s).
if ! compgen -G "tests/__pycache__/conftest.*-pytest-*.pyc" >/dev/null; then
  "${PYTEST[@]}" --collect-only -q -p no:cacheprovider >/dev/null
fi
echo "[test] $workers workers in parallel"
exec "${PYTEST[@]}" -n "$workers" --dist loadscope --no-loadscope-reorder "$@"
