"""The entrypoints as processes: ``turn-config`` renders coturn's file, bad settings exit 2."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.media, pytest.mark.timeout(120)]  # runs the entrypoint as a process

ENV = {
    "SPRECHZIMMER_TURN_SECRET": "s" * 32,
    "SPRECHZIMMER_TURN_PORT": "10042",
    "SPRECHZIMMER_EXPIRES_AT": "2030-01-01T00:00:00+01:00",
}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SPRECHZIMMER_")}
    return subprocess.run(
        [sys.executable, "-m", "sprechzimmer.media", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_turn_config_is_written_from_env(tmp_path: Path) -> None:
    output = tmp_path / "run" / "turn" / "turnserver.conf"
    result = run(["turn-config", "--output", str(output)], ENV)
    assert result.returncode == 0, result.stderr
    text = output.read_text()
    assert "listening-port=10042" in text
    assert stat.S_IMODE(output.stat().st_mode) == 0o640
    assert "s" * 32 not in result.stdout + result.stderr  # the secret never reaches the logs


def test_missing_settings_fail_with_names(tmp_path: Path) -> None:
    result = run(["sfu"], {k: v for k, v in ENV.items() if k != "SPRECHZIMMER_TURN_PORT"})
    assert result.returncode == 2
    assert "SPRECHZIMMER_TURN_PORT is required" in result.stderr
    assert "SPRECHZIMMER_CONTROL_TOKEN is required" in result.stderr
