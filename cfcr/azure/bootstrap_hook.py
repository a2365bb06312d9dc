"""Deprecated: the node hook moved to :mod:`cfcr.azure.node_hook` (``AzureNodeHook``); this module keeps
the old names importable for one release."""

from __future__ import annotations

import warnings

from cfcr.azure.node_hook import *  # noqa: F403
from cfcr.azure.node_hook import AzureNodeHook

KeyVaultFetcher = AzureNodeHook
"""Deprecated name of :class:`cfcr.azure.node_hook.AzureNodeHook`."""

warnings.warn("cfcr.azure.bootstrap_hook is deprecated; import AzureNodeHook from cfcr.azure.node_hook",
              DeprecationWarning, stacklevel=2)
