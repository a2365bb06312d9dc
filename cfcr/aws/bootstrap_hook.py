"""Deprecated: the node hook moved to :mod:`cfcr.aws.node_hook` (``AwsNodeHook``); this module keeps
the old names importable for one release."""

from __future__ import annotations

import warnings

from cfcr.aws.node_hook import *  # noqa: F403
from cfcr.aws.node_hook import AwsNodeHook

SecretsManagerFetcher = AwsNodeHook
"""Deprecated name of :class:`cfcr.aws.node_hook.AwsNodeHook`."""

warnings.warn("cfcr.aws.bootstrap_hook is deprecated; import AwsNodeHook from cfcr.aws.node_hook",
              DeprecationWarning, stacklevel=2)
