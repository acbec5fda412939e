"""MSC's ``multistorageclient.contrib.pickle``: re-exports :mod:`manystore.pickle`."""

from __future__ import annotations

from ..pickle import *  # noqa: F403
from ..pickle import __all__ as __all__
