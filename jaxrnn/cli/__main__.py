"""``python -m jaxrnn.cli ...``: the same as ``jaxrnn ...``."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
