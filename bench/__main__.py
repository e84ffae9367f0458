"""`python -m bench`: the benchmarks, one JSON object of figures on stdout."""

import sys

from bench.run import main

sys.exit(main())
