#!/usr/bin/env bash
# Quick start: install what is missing, then bring the whole system up on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/relaydesk up
