"""axe-core, the accessibility engine, for the browser tests: a pinned version, fetched once
with npm into ~/.cache/sprechzimmer/npm (outside the checkout, like the other tools), and run
in a page.

The pages' CSP allows no inline script, so axe is not added as a <script>: Playwright evaluates
its source through the DevTools protocol (`page.evaluate`), which CSP does not govern; the page
itself is unchanged.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from playwright.async_api import Page

AXE_VERSION = "4.14.1"
_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sprechzimmer" / "npm"
AXE_DIR = _CACHE / f"axe-core-{AXE_VERSION}"
# WCAG 2.1 A and AA, plus axe's best practices (landmarks, one h1, …).
_RUN = """
async () => {
  const result = await axe.run(document, {
    runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]},
  });
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5),
  }));
}
"""


@functools.cache
def axe_source() -> str:
    script = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        assert npm, "npm is needed once to fetch axe-core (Debian: apt-get install npm)"
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(AXE_DIR),
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                f"axe-core@{AXE_VERSION}",
            ],
            check=True,
            capture_output=True,
        )
    return script.read_text()


async def axe_violations(
    page: Page, impacts: tuple[str, ...] = ("serious", "critical")
) -> list[dict[str, Any]]:
    """The page's axe violations of the given impacts (empty: none)."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(axe_source())
    violations: list[dict[str, Any]] = await page.evaluate(_RUN)
    return [v for v in violations if v["impact"] in impacts]
