"""`python -m attnrec_tf.bench`: see `attnrec_tf.bench.suites`."""

import sys

from attnrec_tf.bench.suites import main

if __name__ == "__main__":
    sys.exit(main())
