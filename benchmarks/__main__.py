"""`python -m benchmarks`: see `benchmarks.suites`."""

import sys

from benchmarks.suites import main

if __name__ == "__main__":
    sys.exit(main())
