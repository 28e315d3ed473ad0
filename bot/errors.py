"""deskmate's own exception types and the one error path every failure ends in.

Driver and SDK exceptions are translated into these at the module that talks to the driver or
SDK; the message of a `DeskmateError` is the sentence a person sees.
"""

from __future__ import annotations

import logging
import secrets

from storage import errors as storage

logger = logging.getLogger("deskmate.errors")


class DeskmateError(Exception):
    """Base of every error deskmate raises on purpose; `str(exc)` is safe to show."""

    http_status = 500


class ConfigError(DeskmateError):
    """A setting is missing or invalid; start-up stops."""


class UsageError(DeskmateError):
    """A command was given arguments it cannot act on (exit code 2)."""

    http_status = 400


class NotFound(DeskmateError):
    http_status = 404


class Conflict(DeskmateError):
    http_status = 409


class DatabaseUnavailable(DeskmateError):
    """The database cannot be reached or started."""

    http_status = 503


class SchemaMismatch(DeskmateError):
    """The database was created for something this build cannot serve (e.g. embedding size)."""


def from_storage(exc: storage.StorageError) -> DeskmateError:
    """Storage's own error as deskmate's: same sentence, the HTTP status and exit code of ours."""
    translated: type[DeskmateError] = {
        storage.DatabaseUnavailable: DatabaseUnavailable,
        storage.SchemaMismatch: SchemaMismatch,
        storage.UnknownTenant: NotFound,
    }.get(type(exc), DeskmateError)
    return translated(str(exc))


def new_reference() -> str:
    """A short id a user can quote to an operator; it appears in the log line of the failure."""
    return secrets.token_hex(4)


def report_error(exc: BaseException, *, where: str, reference: str | None = None) -> str:
    """Log one structured line for an unexpected failure and return its reference id."""
    reference = reference or new_reference()
    logger.error(
        "unexpected error in %s (ref %s): %s: %s",
        where,
        reference,
        type(exc).__name__,
        exc,
        exc_info=exc,
        extra={"reference": reference, "where": where},
    )
    # Imported late: metrics pull in prometheus_client, which the CLI's light commands skip.
    from bot.metrics import ERRORS

    ERRORS.labels(where=where).inc()
    return reference
