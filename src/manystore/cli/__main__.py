"""``python -m manystore.cli``: the ``manystore`` command line."""

import sys

from . import main

sys.exit(main())
