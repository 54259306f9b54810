#!/usr/bin/env bash
# Runs the whole test suite against real RabbitMQ and a real MongoDB-protocol server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test
exec .venv/bin/python -m pytest "$@"
