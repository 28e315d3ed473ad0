"""deskmate's tests, in tiers by folder (`make test` runs all three):

- unit/: pure functions; no database, no subprocess, no network (tests/unit/conftest.py refuses
  them), so `pytest tests/unit` runs in seconds without PostgreSQL;
- integration/: on the embedded PostgreSQL (a migrated template cloned per test) and local fake
  servers, in this process;
- e2e/: the real `deskmate` command as a subprocess, and the browser test `make e2e` runs;
- support/: what the tiers share: fakes of the platforms' APIs, factories, request builders.
"""
