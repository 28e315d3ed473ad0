"""`make bench`: every benchmark, printed as measurements and ratios from one run."""

from bench import retrieval

retrieval.main()
