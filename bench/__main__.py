"""Runs every benchmark module under bench/ and prints its ratios."""

import sys

BENCHMARKS: list[str] = []


def main() -> int:
    if not BENCHMARKS:
        print("no benchmarks yet; see docs/benchmarks.md")
    return 0


sys.exit(main())
