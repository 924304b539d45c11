"""``python -m jaxrnn ...``: the ``jaxrnn`` command without relying on the
console script being on ``PATH`` (pyenv shims, user installs)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
