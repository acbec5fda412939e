"""MSC's ``multistorageclient.contrib.numpy``: re-exports :mod:`manystore.numpy`."""

from __future__ import annotations

from ..numpy import *  # noqa: F403
from ..numpy import __all__ as __all__
