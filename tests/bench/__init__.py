import sys

# `relaydesk bench --quick` without the peer (node and npm), as the tests run it.
QUICK_BENCH = [sys.executable, "-m", "tools.cli", "bench", "--quick", "--no-peer"]
