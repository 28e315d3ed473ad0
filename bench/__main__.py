"""`make bench`: every benchmark, printed as measurements and ratios from one run.

`python -m bench quality`, `python -m bench retrieval [--sizes 100000,1000000] [--plot P]` or
`python -m bench acks [--events 2000] [--senders 200]` or
`python -m bench alerts [--rules 1000] [--rows 1000000]` runs one of them.
`python -m bench beir --data DIR` measures a public benchmark the user has fetched (not part of
`make bench`: its data are not in the project)."""

import sys

from bench import acks, alerts, beir, quality, retrieval

if len(sys.argv) > 1:
    benchmarks = {"quality": quality.main, "retrieval": retrieval.main, "acks": acks.main,
                  "alerts": alerts.main, "beir": beir.main}  # fmt: skip
    benchmarks[sys.argv[1]](sys.argv[2:])
else:
    quality.main([])
    acks.main([])
    alerts.main([])
    retrieval.main(["--plot", "docs/retrieval-curve.png"])
