"""Deprecated: the node hook moved to :mod:`cfcr.gcp.node_hook` (``GcpNodeHook``); this module keeps
the old names importable for one release."""

from __future__ import annotations

import warnings

from cfcr.gcp.node_hook import *  # noqa: F403
from cfcr.gcp.node_hook import GcpNodeHook

SecretManagerFetcher = GcpNodeHook
"""Deprecated name of :class:`cfcr.gcp.node_hook.GcpNodeHook`."""

warnings.warn("cfcr.gcp.bootstrap_hook is deprecated; import GcpNodeHook from cfcr.gcp.node_hook",
              DeprecationWarning, stacklevel=2)
