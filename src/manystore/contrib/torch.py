"""MSC's ``multistorageclient.contrib.torch``: re-exports :mod:`manystore.torch`."""

from __future__ import annotations

from ..torch import *  # noqa: F403
from ..torch import __all__ as __all__
