"""`make bench`: every benchmark, printed as measurements and ratios from one run.

`python -m bench quality` or `python -m bench retrieval [--sizes 100000,1000000] [--plot P]`
runs one of them."""

import sys

from bench import quality, retrieval

if len(sys.argv) > 1:
    {"quality": quality.main, "retrieval": retrieval.main}[sys.argv[1]](sys.argv[2:])
else:
    quality.main([])
    retrieval.main(["--plot", "docs/retrieval-curve.png"])
