"""The errors storage raises on purpose. Driver exceptions become these here, at the edge of the
room; the rooms above translate them into their own (bot/errors.py). `str(exc)` is a sentence
safe to show a person: it never contains a password or a connection string."""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error storage raises on purpose."""


class DatabaseUnavailable(StorageError):
    """The database cannot be reached, started or migrated."""


class SchemaMismatch(StorageError):
    """The database was created for something this build cannot serve (e.g. embedding size)."""


class UnknownTenant(StorageError):
    """No organisation has that slug (or id)."""
