"""Shared by the test tiers: fakes of the platforms' APIs, factories, request builders."""

from __future__ import annotations

import sys

# The embedding size of every test database (small: the tests are about behaviour, not recall).
TEST_DIMENSION = 384

# The real command, as `deskmate` on a PATH would run it, in this interpreter.
DESKMATE = [sys.executable, "-m", "deskmate"]
