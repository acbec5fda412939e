"""MSC's ``multistorageclient.contrib.os.path``: re-exports :mod:`manystore.os.path`."""

from __future__ import annotations

from ...os.path import __all__ as __all__
from ...os.path import exists, isdir, isfile

_ = (exists, isdir, isfile)
