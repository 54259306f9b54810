#!/usr/bin/env bash
# Runs the whole test suite against real RabbitMQ and a real MongoDB-protocol server.
#
# Two phases. Most of a test's time is spent waiting on the broker, the database and
# sockets, not computing, so the tests not marked `alone` run in parallel worker processes
# (pytest-xdist; RELAYDESK_TEST_WORKERS of them, default 6: with 4 the two cores were about
# half idle; a module's tests stay together on one worker, so a system a module shares is
# built once). Then the `alone` tests run one
# after another with nothing else running: they hold a latency bound that a busy machine
# would break. (A test that stops its broker stops a node of its own, tests/conftest.py's
# own_broker, and runs in the parallel phase.)
#
# Pytest arguments apply to both phases (`bash scripts/test.sh tests/foundation -q`); a phase
# that selects no test is not a failure. With your own `-m` or `-n`, or with
# RELAYDESK_TEST_WORKERS=0, it is one plain pytest run with exactly your arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test
PYTEST=(.venv/bin/python -m pytest)

workers=${RELAYDESK_TEST_WORKERS:-6}
for arg in "$@"; do
  case "$arg" in
    -m | -m* | -n | -n* | --numprocesses*) workers=0 ;;
  esac
done
if [[ $workers == 0 ]]; then
  exec "${PYTEST[@]}" "$@"
fi

# pytest's exit code 5 means "no tests collected": a phase with nothing to run is fine.
phase() { "${PYTEST[@]}" "$@" || { status=$?; [[ $status == 5 ]] || return $status; }; }

echo "[test] phase 1: tests not marked alone, $workers workers in parallel"
parallel=0
phase -n "$workers" --dist loadscope --no-loadscope-reorder -m "not alone" "$@" || parallel=$?
echo "[test] phase 2: tests marked alone, one at a time"
alone=0
phase -p no:xdist -m alone "$@" || alone=$?
exit $((parallel != 0 ? parallel : alone))
