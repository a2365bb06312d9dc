"""The cloud contract: what a cloud package provides, and the registry that maps ``cfcr:cloud``
to it (Cluster API's provider contract plays the same part).

A cloud package ``cfcr/<cloud>/`` is found by its ``contract.py``, whose ``CLOUD`` object
implements :class:`CloudPackage`:

==========================  ==================================================================
member                      what it is
==========================  ==================================================================
``name``                    the ``cfcr:cloud`` value (``aws``)
``node_hook(spec)``         the node-side adaptor (:class:`cfcr.node.NodeHook`, in
                            ``node_hook.py``): how a node reads its role's secrets with its
                            instance identity, its provider ID and Node name, and the cloud's
                            user-data limit
``user_data_limit``         the same limit, without a spec (checks, docs)
``etcd_disk_device``        where a member's etcd disk appears on the cloud's images, for a
                            fixed path; a cloud that derives it per disk (AWS: from the volume
                            id) builds it inside ``build``
``addon_profile``           what the addons need to know (:class:`cfcr.addons.cloud.CloudAddonProfile`,
                            in ``addon_profile.py``): CCM provider, CSI provisioner and chart
                            values, StorageClass parameters, cloud config format, autoscaler
                            values
``exports``                 the stack outputs the cloud adds to the common ones, in order
``restore_commands(spec)``  the operator's commands of the etcd restore runbook
                            (:class:`RestoreCommands`), or None where the cloud stores no
                            snapshots yet
``build(spec)``             every resource of the cluster (its ``Cluster`` component, which
                            wraps :class:`cfcr.bootstrap.ClusterBootstrap`), returned as a
                            :class:`BuiltCluster`
==========================  ==================================================================

The program (:mod:`cfcr.program`) asks :func:`package` for the spec's cloud, calls ``build``,
applies the addons where the cloud gives :class:`AddonWiring`, and exports. Adding a cloud is
adding a package with ``contract.py``, ``node_hook.py``, ``addon_profile.py`` and its
components, and one line in :data:`CLOUD_PACKAGES`.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Protocol

import pulumi

from cfcr.config.errors import NAMESPACE, ConfigError, Problem

if TYPE_CHECKING:
    from cfcr.addons.cloud import CloudAddonProfile, NodeGroup
    from cfcr.bootstrap import ClusterBootstrap
    from cfcr.config import ClusterSpec
    from cfcr.node.context import NodeHook, UserDataLimit

CLOUD_PACKAGES: Mapping[str, str] = {
    "aws": "cfcr.aws.contract",
    "gcp": "cfcr.gcp.contract",
    "azure": "cfcr.azure.contract",
}
"""``cfcr:cloud`` -> the module whose ``CLOUD`` implements :class:`CloudPackage` (imported
on first use, so a program pays only for its own cloud's SDK)."""

CLOUD_SDKS: Mapping[str, tuple[str, str]] = {
    "aws": ("pulumi_aws", "pulumi-aws"),
    "gcp": ("pulumi_gcp", "pulumi-gcp"),
    "azure": ("pulumi_azure_native", "pulumi-azure-native"),
}
"""``cfcr:cloud`` -> (the module, the distribution) of its Pulumi SDK, installed by the extra
of the same name (``cfcr[aws]``, pyproject.toml). Only the cloud package imports it."""


class CloudSDKMissingError(ConfigError):
    """The stack's cloud needs a Pulumi SDK this installation does not have (its extra)."""

    def __init__(self, cloud: str, stack: str | None = None) -> None:
        module, dist = CLOUD_SDKS[cloud]
        self.cloud = cloud
        self.stack = stack
        self.problems = [Problem(f"{NAMESPACE}:cloud", cloud, f"its SDK {dist} is not installed")]
        who = f"stack {stack}" if stack else "the stack"
        ValueError.__init__(
            self,
            f"{who} uses cloud {cloud}, whose SDK is not installed: install cfcr[{cloud}] "
            f"({dist}: `pip install 'cfcr[{cloud}]'`, or in a cfcr clone "
            f"`python3 dev.py render --stack {stack or 'STACK'}`, with the same --project-dir)",
        )


def require_sdk(cloud: str, stack: str | None = None) -> None:
    """:class:`CloudSDKMissingError` when ``cloud``'s SDK is not installed (checked without
    importing it); nothing for an unknown cloud (the config check names those)."""
    if cloud not in CLOUD_SDKS:
        return
    module = CLOUD_SDKS[cloud][0]
    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:
        found = False
    if not found:
        raise CloudSDKMissingError(cloud, stack)


@dataclass
class AddonWiring:
    """What the addons need from a built cluster (:class:`cfcr.addons.ClusterAddonsArgs`)."""

    kubeconfig: pulumi.Input[str]
    """The admin kubeconfig (a secret)."""
    api_server_url: str
    """``https://<api endpoint>:<port>`` as the nodes reach it."""
    gate_url: pulumi.Input[str]
    """Where this program reaches the API (the readiness gate polls it)."""
    gate_after: Sequence[pulumi.Resource]
    """What the readiness gate waits for: the control-plane machines and the last member gate."""
    node_groups: Mapping[str, NodeGroup]
    """Pool name -> its autoscaling group as the cloud names it."""
    parent: pulumi.Resource
    """The addons' parent (the cloud's ``Cluster``)."""
    gate_machines: pulumi.Input[Sequence[str]] = ()
    """The control-plane machines' ids (the readiness gate waits again when they change)."""
    termination_queue_url: pulumi.Input[str] | None = None
    """The termination queue's URL, where the cloud has one."""
    cloud_names: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Names of the cluster's cloud resources its addon profile reads
    (:attr:`cfcr.addons.cloud.CloudFacts.cloud_names`; Azure: the ``azure.json`` names)."""


class ClusterComponent(Protocol):
    """What every cloud's ``Cluster`` component offers the program (:meth:`BuiltCluster.of`)."""

    bootstrap: ClusterBootstrap
    outputs: dict[str, Any]
    admin_kubeconfig: pulumi.Output[str]
    private_api_server_url: str
    api_server_url: pulumi.Output[str]
    control_plane_machines: list[pulumi.Resource]
    control_plane_rolled: list[pulumi.Resource]
    """The last member gate (:class:`cfcr.bootstrap.rollout.MemberGate`): done when every member
    replaced by an update is back."""


@dataclass
class BuiltCluster:
    """What a cloud package's ``build`` returns."""

    bootstrap: ClusterBootstrap
    """The cluster's bootstrap (PKI, secrets, user-data of every role)."""
    exports: dict[str, Any]
    """The cloud's own stack outputs (after the common ones), in :attr:`CloudPackage.exports` order."""
    addons: AddonWiring | None = None
    """Inputs of the addons; None when the cloud builds no machines yet (bootstrap only)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else the caller may want (the cloud's ``Cluster`` component, ...)."""

    @classmethod
    def of(cls, cluster: ClusterComponent, exports: Sequence[str], node_groups: Mapping[str, NodeGroup], *,
           termination_queue_url: pulumi.Input[str] | None = None,
           cloud_names: Mapping[str, pulumi.Input[str]] | None = None) -> BuiltCluster:
        """A cloud's ``Cluster`` component as the program takes it: its outputs named in
        ``exports`` (those it has), and the addons wired to its API and machines."""
        return cls(
            bootstrap=cluster.bootstrap,
            exports={key: cluster.outputs[key] for key in exports if key in cluster.outputs},
            addons=AddonWiring(
                kubeconfig=cluster.admin_kubeconfig,
                api_server_url=cluster.private_api_server_url,
                gate_url=cluster.api_server_url,
                gate_after=[*cluster.control_plane_machines, *cluster.control_plane_rolled],
                gate_machines=cluster.outputs["controlPlaneInstanceIds"],
                node_groups=node_groups,
                parent=cluster,  # type: ignore[arg-type]  # a ComponentResource, as every Cluster is
                termination_queue_url=termination_queue_url,
                cloud_names=dict(cloud_names or {}),
            ),
            extra={"cluster": cluster},
        )


class RestoreCommands(Protocol):
    """A cloud's commands of the etcd restore runbook (:mod:`cfcr.etcd_restore`)."""

    @property
    def list_and_presign(self) -> list[str]:
        """List the snapshots, then make a short-lived download URL for the chosen one (``URL=``)."""
        ...

    @property
    def step_file_suffix(self) -> str | None:
        """The suffix of the file the cloud runs a step from (:meth:`member_step_file`), or None
        when it runs the script itself."""
        ...

    def member_step_file(self, script: str) -> tuple[str, str] | None:
        """A file the cloud runs a step's script from (file suffix, content), or None."""
        ...

    @property
    def step_output_hint(self) -> str:
        """Where the operator reads a step's output (the cloud's console or CLI)."""
        ...

    def run_on_member(self, member: str, parameters: Path) -> list[str]:
        """Run a step on ``member``'s machine, given the step's file."""
        ...


class CloudPackage(Protocol):
    """The contract every cloud package implements (see the module docstring's table)."""

    @property
    def name(self) -> str:
        """The ``cfcr:cloud`` value."""
        ...

    @property
    def user_data_limit(self) -> UserDataLimit:
        """How much user-data the cloud's machines take."""
        ...

    @property
    def etcd_disk_device(self) -> str | None:
        """The etcd disk's stable path on the cloud's images, when it is fixed."""
        ...

    @property
    def addon_profile(self) -> CloudAddonProfile:
        """What the addons need to know about the cloud."""
        ...

    @property
    def exports(self) -> Sequence[str]:
        """The stack outputs the cloud adds to the common ones."""
        ...

    def node_hook(self, spec: ClusterSpec) -> NodeHook:
        """The node-side adaptor for ``spec``'s nodes."""
        ...

    def restore_commands(self, spec: ClusterSpec) -> RestoreCommands | None:
        """The etcd restore runbook's commands for ``spec``'s cluster, or None."""
        ...

    def build(self, spec: ClusterSpec) -> BuiltCluster:
        """Every resource of ``spec``'s cluster."""
        ...


class _HasUserDataLimit(Protocol):
    user_data_limit: ClassVar[UserDataLimit]


@dataclass(frozen=True)
class CloudPackageData:
    """The contract's data members, which every package states the same way; a package's
    ``CLOUD`` is an instance of a subclass that adds ``node_hook``, ``restore_commands`` and
    ``build``."""

    name: str
    """The ``cfcr:cloud`` value."""
    hook_type: type[_HasUserDataLimit]
    """The node hook's class; its ``user_data_limit`` is the cloud's (read when asked)."""
    addon_profile: CloudAddonProfile
    """What the addons need to know."""
    exports: Sequence[str]
    """The outputs the cloud adds to the common ones."""
    etcd_disk_device: str | None = None
    """The etcd disk's stable path when it is fixed."""

    @property
    def user_data_limit(self) -> UserDataLimit:
        """The node hook's limit."""
        return self.hook_type.user_data_limit


@dataclass(frozen=True)
class BootstrapOnlyCloud(CloudPackageData):
    """A cloud whose package builds no machines yet: the cluster's bootstrap alone
    (:mod:`cfcr.bootstrap.standalone`), no addons, no etcd snapshots."""

    hook_for: Callable[[ClusterSpec], NodeHook] | None = None
    """The node hook of a spec."""

    def node_hook(self, spec: ClusterSpec) -> NodeHook:
        """The node hook of ``spec``'s nodes."""
        assert self.hook_for is not None, f"{self.name}: no hook_for"
        return self.hook_for(spec)

    def restore_commands(self, spec: ClusterSpec) -> None:
        """No etcd snapshots on this cloud yet."""
        return None

    def build(self, spec: ClusterSpec) -> BuiltCluster:
        """The bootstrap alone."""
        from cfcr.bootstrap.standalone import build_bootstrap_only

        assert self.etcd_disk_device is not None, f"{self.name}: no etcd_disk_device"
        bootstrap, outputs = build_bootstrap_only(spec, self.node_hook(spec), self.etcd_disk_device)
        return BuiltCluster(bootstrap=bootstrap, exports=outputs)


def package(cloud: str, stack: str | None = None) -> CloudPackage:
    """The cloud package of ``cfcr:cloud`` = ``cloud``; ValueError naming the known ones otherwise,
    :class:`CloudSDKMissingError` (naming ``stack``) when its SDK is not installed."""
    try:
        module = CLOUD_PACKAGES[cloud]
    except KeyError:
        raise ValueError(f"unknown cloud {cloud!r}; known: {', '.join(sorted(CLOUD_PACKAGES))}") from None
    try:
        contract: CloudPackage = importlib.import_module(module).CLOUD
    except ModuleNotFoundError as exc:
        sdk = CLOUD_SDKS.get(cloud, ("", ""))[0]
        if sdk and (exc.name or "").split(".")[0] == sdk:
            raise CloudSDKMissingError(cloud, stack) from None
        raise
    return contract


def user_data_limit(cloud: str) -> UserDataLimit:
    """The user-data limit of ``cloud`` (ValueError for an unknown cloud)."""
    return package(cloud).user_data_limit


def cloud_user_data_limit(cloud: str) -> int:
    """Maximum user-data size of ``cloud`` in bytes (before any base64)."""
    return user_data_limit(cloud).max_bytes
