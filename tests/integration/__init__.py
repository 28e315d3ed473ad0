"""Integration tests: the embedded PostgreSQL and local fake servers, in this process."""
