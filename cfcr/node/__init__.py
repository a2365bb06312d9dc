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
