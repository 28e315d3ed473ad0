"""The fault suite (`make faults`): three replicas on one PostgreSQL, killed, their database
restarted, Claude failing, Slack retrying; a report of what the people saw (docs/faults.md).

Not collected by `make test`: the suite's file is not named test_*.py and lives outside the
test paths of pyproject.toml.
"""
