"""What several commands share: the --tenant option and table output."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def add_tenant_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tenant", default="default", help="the organisation to act on (default: %(default)s)"
    )


def print_table(rows: Sequence[tuple[str, ...]]) -> None:
    """Rows as aligned columns; the first row is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
