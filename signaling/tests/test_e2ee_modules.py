"""The browser client's end-to-end encryption modules (static/e2ee/: frame format, key schedule,
e2e messages, the key policy, the verification code) under Node's WebCrypto, the same API as the
browser's: ``node --test signaling/tests/js/e2ee.test.mjs`` (Debian's nodejs, `make packages`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

TESTS = Path(__file__).parent / "js" / "e2ee.test.mjs"


@pytest.mark.unit
def test_e2ee_modules_pass_their_unit_tests_in_node() -> None:
    node = shutil.which("node")
    assert node, "nodejs is not installed (make packages)"
    # The static modules are plain .js ES modules served to the browser, with no package.json:
    # Node must detect them as modules.
    result = subprocess.run(
        [node, "--experimental-detect-module", "--test", "--test-reporter=tap", str(TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    counts = dict(re.findall(r"^# (pass|fail|cancelled|skipped|todo) (\d+)$", result.stdout, re.M))
    assert int(counts["pass"]) > 0, result.stdout[-2000:]
    assert counts["fail"] == counts["cancelled"] == counts["skipped"] == counts["todo"] == "0"
