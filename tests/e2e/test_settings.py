"""Settings at the real command: an invalid one stops `deskmate` with one clear line."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support import DESKMATE


def test_invalid_setting_stops_the_command_with_one_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DEFAULT_TIMEZONE": "Nowhere/Town"}
    result = subprocess.run(
        [*DESKMATE, "migrate"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "deskmate: invalid setting DEFAULT_TIMEZONE: unknown time zone 'Nowhere/Town' "
        "(use an IANA name like Europe/Berlin)"
    ]
    assert not (tmp_path / ".deskmate").exists()  # nothing started
