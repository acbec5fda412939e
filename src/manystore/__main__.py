"""``python -m manystore``: the ``manystore`` command line."""

import sys

from .cli import main

sys.exit(main())
