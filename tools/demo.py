"""The demo workspace `relaydesk up` prepares so the widget demo and console work at once.

A tenant ``demo`` with an owner whose generated password is kept in the data directory
(mode 600) and printed on every start: a local convenience, not a production path —
production accounts come from `relaydesk admin` or SaaS sign-up.
"""

import asyncio
import os
import sys
from pathlib import Path

from relaydesk.passwords import generate_password

DEMO_TENANT = "demo"
DEMO_EMAIL = "owner@demo.local"


async def _admin(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.cli",
        "admin",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode(errors="replace")


def _last_line(output: str) -> str:
    return output.strip().splitlines()[-1] if output.strip() else ""


async def ensure_demo_workspace(env: dict[str, str], data_dir: str) -> str:
    """Create the demo tenant and owner once; return the lines to print."""
    credentials = Path(data_dir) / "demo-credentials"
    if credentials.exists():
        password = credentials.read_text().strip()
    else:
        password = generate_password()
        created, output = await _admin(
            env, "create-tenant", "--tenant", DEMO_TENANT, "--name", "Demo"
        )
        if created != 0 and "exist" not in output:
            return f"  (demo workspace not created: {_last_line(output) or created})"
        done, output = await _admin(
            env,
            "create-agent",
            "--tenant",
            DEMO_TENANT,
            "--email",
            DEMO_EMAIL,
            "--name",
            "Demo Owner",
            "--role",
            "owner",
            f"--password={password}",
        )
        if done != 0:
            return f"  (demo owner not created: {_last_line(output) or done})"
        credentials.parent.mkdir(parents=True, exist_ok=True)
        credentials.write_text(password + "\n")
        os.chmod(credentials, 0o600)
    return f"  Demo sign-in:  workspace {DEMO_TENANT}, {DEMO_EMAIL}, password {password}"
