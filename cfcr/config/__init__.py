"""Stack config -> one validated, typed ClusterSpec. Every check and every default lives here."""

from cfcr.config.errors import ConfigError, InputError, Problem
from cfcr.config.load import (
    StackRef,
    default_name,
    find_stack,
    list_stacks,
    load_from_pulumi,
    load_spec,
    load_stack,
    read_stack_config,
    read_stack_file,
    stack_file,
)
from cfcr.config.schema import (
    DEFAULT_CONTROL_PLANE_SIZE,
    DEFAULT_WORKER_SIZE,
    ClusterSpec,
    ControlPlaneConfig,
    NetworkingConfig,
    NodePoolConfig,
    PkiConfig,
)
from cfcr.config.values import Taint

__all__ = [
    "DEFAULT_CONTROL_PLANE_SIZE",
    "DEFAULT_WORKER_SIZE",
    "ClusterSpec",
    "ConfigError",
    "InputError",
    "StackRef",
    "ControlPlaneConfig",
    "NetworkingConfig",
    "NodePoolConfig",
    "PkiConfig",
    "Problem",
    "Taint",
    "default_name",
    "find_stack",
    "list_stacks",
    "load_from_pulumi",
    "load_spec",
    "load_stack",
    "read_stack_config",
    "read_stack_file",
    "stack_file",
]
