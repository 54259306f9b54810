"""axe-core (Deque's accessibility engine) run inside a page, as a screen-reader audit would.

axe-core is a test-only npm package (tests/browser/package.json, installed by
``scripts/bootstrap.sh --test``). Playwright injects it with ``add_script_tag``; the pages'
CSP allows scripts from the gateway only, so the contexts that audit are made with
``bypass_csp=True`` (``audit_context``). Only serious and critical violations fail a test:
axe's "moderate" and "minor" findings (best practices, landmarks) are advice.
"""

from pathlib import Path
from typing import Any

import pytest

AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
FAILING_IMPACTS = ("serious", "critical")

# Runs in the page: every violation of the failing impacts, with where it is and why.
RUN = """async (impacts) => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations.filter((v) => impacts.includes(v.impact)).map((v) => ({
    rule: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => ({ target: n.target.flat().join(" >> "), why: n.failureSummary })),
  }));
}"""


async def audit_context(browser: Any) -> Any:
    """A browser context axe can be injected into (the pages' CSP would refuse the script)."""
    return await browser.new_context(bypass_csp=True)


async def serious_violations(page: Any) -> list[dict[str, Any]]:
    """axe's serious and critical violations on the page as it is now (shadow roots included)."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `bash scripts/bootstrap.sh --test` (npm installs it)")
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.add_script_tag(path=str(AXE))
    return list(await page.evaluate(RUN, list(FAILING_IMPACTS)))


def describe(violations: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{v['impact']} {v['rule']}: {v['help']}\n"
        + "\n".join(f"    {n['target']}: {n['why']}" for n in v["nodes"])
        for v in violations
    )
