"""Pure renderers: spec + PKI references + cloud hooks -> cloud-init user-data per role.

No Pulumi here. The cloud packages resolve their Outputs (endpoints, member addresses,
secret ids) into a :class:`NodeContext` and call :func:`render_user_data` per
:class:`Role` from :func:`roles_for`.
"""

from cfcr.node.context import NodeContext, NodeHook, Role, SecretFetcher, UserDataLimit
from cfcr.node.userdata import (
    UserDataTooLargeError,
    cloud_config,
    render_user_data,
    roles_for,
)

__all__ = [
    "NodeContext",
    "Role",
    "NodeHook",
    "SecretFetcher",
    "UserDataLimit",
    "UserDataTooLargeError",
    "cloud_config",
    "render_user_data",
    "roles_for",
]


def __getattr__(name: str) -> object:
    """Deprecated names: ``cloud_user_data_limit`` moved to :mod:`cfcr.clouds` (each cloud's limit
    is part of its package's contract)."""
    if name == "cloud_user_data_limit":
        import warnings

        from cfcr import clouds

        warnings.warn("cfcr.node.cloud_user_data_limit moved to cfcr.clouds.cloud_user_data_limit",
                      DeprecationWarning, stacklevel=2)
        return clouds.cloud_user_data_limit
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
