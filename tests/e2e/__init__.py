"""End-to-end tests: the real `deskmate` command and service as processes; the browser test."""
