"""What the cloud layer tells the node renderers: endpoints, members, secret ids, hooks.

Everything here is plain data (no Pulumi): the cloud package resolves its Outputs first
and then calls :func:`cfcr.node.render_user_data` inside an ``apply``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from cfcr.config import ClusterSpec, NodePoolConfig
from cfcr.config.topology import ControlPlaneMember
from cfcr.constants import API_PORT
from cfcr.pki.specs import RoleKind


@dataclass(frozen=True)
class UserDataLimit:
    """How much user-data a cloud's machines take."""

    max_bytes: int
    """Largest user-data, in bytes before any base64 the API applies."""
    gzip: bool
    """Whether a gzip stream may ride in it (cloud-init unpacks it); GCP's metadata values are text."""


class NodeHook(Protocol):
    """A cloud's node-side adaptor: how a node reads one secret with nothing but its instance
    identity (and, through the optional capabilities below, learns its provider ID and Node
    name), and how much user-data the cloud's machines take. Each cloud package has one
    (``cfcr/<cloud>/node_hook.py``). A hook may also name ``time_servers`` (a tuple of NTP
    servers the cloud serves inside its network, e.g. AWS's ``169.254.169.123``): chrony then
    uses them (cloud-init's ``ntp``), which an air-gapped node needs. Other optional
    capabilities: :class:`NodeIdentity`, :class:`NodeNaming`, :class:`JoinAccess`,
    :class:`ShellFunctions` below, :class:`cfcr.node.backup.SnapshotStore` (etcd snapshots) and
    :class:`cfcr.node.metadata_guard.MetadataGuard` (addresses pods may not reach)."""

    @property
    def user_data_limit(self) -> UserDataLimit:
        """The cloud's user-data limit (:func:`cfcr.node.render_user_data` fits within it)."""
        ...

    def packages(self) -> list[str]:
        """apt packages the fetch command needs (installed by cloud-init before the boot script)."""
        ...

    def setup_commands(self) -> list[str]:
        """Shell commands run once, before the first fetch (e.g. install a CLI); idempotent."""
        ...

    def fetch_command(self, secret_id: str) -> str:
        """A shell command that prints the secret's value on stdout and fails loudly otherwise."""
        ...


SecretFetcher = NodeHook
"""Former name of :class:`NodeHook`."""


@runtime_checkable
class NodeIdentity(Protocol):
    """Optional capability of a cloud hook: how a node learns its cloud provider ID at boot.

    The kubelet registers with ``--provider-id`` set from it, so the cloud controller
    manager finds the node's instance by ID whatever the node's name. A hook without
    this method still works: its nodes register without a provider ID, as before.
    """

    def provider_id_command(self) -> str:
        """The body of a bash function that prints this instance's provider ID on stdout
        (``aws:///<zone>/<instance-id>``...) from the instance metadata, or fails."""
        ...


@runtime_checkable
class MachineId(Protocol):
    """Optional capability of a cloud hook whose provider IDs outlive the machine (GCP names an
    instance, and a member's replacement takes its name): how a node reads the machine's own,
    never reused id. A replaced member records it, and its rollout gate waits for it."""

    def machine_id_command(self) -> str:
        """The body of a bash function that prints the machine's unique id, or fails."""
        ...


def machine_id_command(hook: object) -> str | None:
    """The hook's :class:`MachineId` body, or None."""
    return hook.machine_id_command() if isinstance(hook, MachineId) else None


@runtime_checkable
class NodeNaming(Protocol):
    """Optional capability of a cloud hook: the Node name a control-plane member's kubelet
    registers, as the cloud names the VM (kubeadm's default is the host name; cfcr sets it
    explicitly). Without it, members register under their etcd member name."""

    def node_name(self, member: ControlPlaneMember) -> str:
        """The member's Node name on this cloud."""
        ...


def with_node_names(members: Sequence[ControlPlaneMember], hook: object) -> list[ControlPlaneMember]:
    """``members`` with ``node_name`` set by the hook's :class:`NodeNaming`, when it has one."""
    if not isinstance(hook, NodeNaming):
        return list(members)
    return [replace(m, node_name=hook.node_name(m)) for m in members]


@runtime_checkable
class LocalApiOnMembers(Protocol):
    """Optional capability of a cloud hook whose internal load balancer does not carry a
    backend's packets to its own frontend (Azure's "hairpin"): a control-plane member then
    reaches the API on itself. Its user-data maps the API name to ``127.0.0.1`` in
    ``/etc/hosts`` on every boot, before anything starts (cloud-init ``bootcmd``), as CAPZ does;
    workers keep the load balancer."""

    def members_use_local_api(self) -> bool:
        """True: members resolve the API name to their own API server."""
        ...


def members_use_local_api(hook: object) -> bool:
    """Whether the hook's members reach the API on themselves (:class:`LocalApiOnMembers`)."""
    return isinstance(hook, LocalApiOnMembers) and hook.members_use_local_api()


@runtime_checkable
class JoinAccess(Protocol):
    """Optional capability of a cloud hook: how the control plane keeps join credentials
    short-lived and takes them away from nodes that have joined.

    * ``store_command(secret_id)``: a shell command that writes its standard input as the
      secret's new value (the control plane rotates the bootstrap token in the store);
    * ``revoke_command()``: the body of a bash function that reads provider IDs of joined
      workers on standard input and takes from each VM the cloud identity that may read the
      join secrets (on AWS: swaps its instance profile for the pool's joined one);
    * ``candidate_command()``: the body of a bash function ``cfcr_join_candidate NAME`` that
      succeeds only when NAME is a VM of this cluster's pools that still holds the join
      identity, and prints that VM's creation time in seconds since the epoch: the control
      plane approves a node-client certificate for no other name, and for the name of an
      existing Node only when that Node is not Ready and registered before the VM was created
      (the cloud recreated the VM under the same name; join-credentials.sh).
    """

    def store_command(self, secret_id: str) -> str:
        """A shell command storing stdin as ``secret_id``'s value (never on a command line)."""
        ...

    def revoke_command(self) -> str:
        """The body of ``cfcr_revoke_join_access`` (provider IDs on stdin)."""
        ...

    def candidate_command(self) -> str:
        """The body of ``cfcr_join_candidate NAME`` (success: a pool VM still joining; prints its
        creation time, seconds since the epoch)."""
        ...


@runtime_checkable
class ShellFunctions(Protocol):
    """Optional capability of a cloud hook: bash functions that its commands call, defined once,
    at the top of ``/etc/cfcr/secrets.sh``. Every node script sources that file before the other
    hook files (``load_node_facts`` in lib.sh; ``etcd-backup.sh`` sources ``backup.sh`` after it),
    so the fetch, store, join-access and backup commands may all call them."""

    def shell_functions(self) -> str:
        """Bash function definitions (no secrets, no commands run when sourced)."""
        ...


def shell_functions(hook: object) -> str:
    """The hook's :class:`ShellFunctions` text, or an empty string when it has none."""
    return hook.shell_functions() if isinstance(hook, ShellFunctions) else ""


def join_access(hook: object) -> JoinAccess | None:
    """The hook as :class:`JoinAccess`, or None when the cloud has no such capability."""
    return hook if isinstance(hook, JoinAccess) else None


def provider_id_command(hook: object) -> str | None:
    """The hook's provider-ID shell body, or None when the hook has no such capability."""
    return hook.provider_id_command() if isinstance(hook, NodeIdentity) else None


@dataclass(frozen=True)
class NodeContext:
    """Facts the cloud layer knows about the cluster that the node renderers need."""

    api_endpoint: str
    """Host name or IP the API load balancer answers on (without scheme or port)."""
    control_plane_members: Sequence[ControlPlaneMember]
    """Every control-plane member (static etcd membership), in member-index order."""
    secret_ids: Mapping[str, str]
    """Material key (``ca.crt``, ``etcd/members/<m>/server.key``, ``bootstrap-token``...) -> cloud secret id."""
    api_port: int = API_PORT
    """Port of the API load balancer and of every API server."""
    etcd_disk_device: str = "/dev/sdc"
    """Block device of a control-plane node's persistent etcd disk (a stable /dev/disk/by-* path is best)."""
    cloud_provider: str = "external"
    """Value of the kubelet's ``--cloud-provider`` (``external``: the out-of-tree CCM initialises nodes)."""
    ca_cert_hash: str | None = None
    """kubeadm discovery pin ``sha256:<hex>`` of the cluster CA (public); None computes it at boot from the fetched ca.crt."""
    ca_cert_hashes: Sequence[str] = ()
    """The pins of every trusted cluster CA generation, the signing generation's first (a CA
    rotation trusts two: cfcr/pki/ROTATION.md); empty means ``[ca_cert_hash]``. A worker's join
    pins them all, so a worker joins whichever generation ``kube-public/cluster-info`` carries."""
    api_sans: Sequence[str] = ()
    """Extra names/IPs of the API endpoint (other LB names, aliases) for the API server certificate."""
    architecture_override: str | None = None
    """Force the CPU architecture of downloads (normally taken from the pool / control-plane config)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "control_plane_members", tuple(self.control_plane_members))
        object.__setattr__(self, "secret_ids", MappingProxyType(dict(self.secret_ids)))
        object.__setattr__(self, "api_sans", tuple(self.api_sans))
        object.__setattr__(self, "ca_cert_hashes", tuple(self.ca_cert_hashes))
        if not self.control_plane_members:
            raise ValueError("NodeContext needs at least one control-plane member")
        if not 0 < self.api_port < 65536:
            raise ValueError(f"api_port {self.api_port} is not a TCP port")
        for pin in (self.ca_cert_hash, *self.ca_cert_hashes):
            if pin is not None and not (pin.startswith("sha256:") and len(pin) == 71):
                raise ValueError(f"ca_cert_hash {pin!r} must be 'sha256:' + 64 hex digits")

    @property
    def api_server_url(self) -> str:
        """``https://<endpoint>:<port>``."""
        return f"https://{self.api_endpoint}:{self.api_port}"


@dataclass(frozen=True)
class Role:
    """One user-data variant: control-plane member ``index``, or the worker pool ``pool``."""

    kind: RoleKind
    """``control-plane`` or ``worker``."""
    index: int | None = None
    """Control-plane member index (0-based); None for workers."""
    pool: str | None = None
    """Worker pool name; None for control-plane members."""

    def __post_init__(self) -> None:
        if self.kind == "control-plane":
            if self.index is None or self.index < 0 or self.pool is not None:
                raise ValueError("a control-plane role needs index >= 0 and no pool")
        elif self.kind == "worker":
            if not self.pool or self.index is not None:
                raise ValueError("a worker role needs a pool name and no index")
        else:
            raise ValueError(f"unknown role kind {self.kind!r}")

    @classmethod
    def control_plane(cls, index: int) -> Role:
        """Control-plane member ``index``."""
        return cls("control-plane", index=index)

    @classmethod
    def worker(cls, pool: str) -> Role:
        """A node of worker pool ``pool``."""
        return cls("worker", pool=pool)

    @property
    def is_control_plane(self) -> bool:
        """True for control-plane members."""
        return self.kind == "control-plane"

    @property
    def slug(self) -> str:
        """Stable file/resource name: ``control-plane-0``, ``worker-default``."""
        return f"control-plane-{self.index}" if self.kind == "control-plane" else f"worker-{self.pool}"

    def member(self, ctx: NodeContext) -> ControlPlaneMember:
        """This control-plane role's etcd member (``ValueError`` for workers or a bad index)."""
        if self.index is None:
            raise ValueError(f"{self.slug} is not a control-plane member")
        if self.index >= len(ctx.control_plane_members):
            raise ValueError(
                f"{self.slug}: the context names only {len(ctx.control_plane_members)} control-plane members"
            )
        return ctx.control_plane_members[self.index]

    def node_pool(self, spec: ClusterSpec) -> NodePoolConfig:
        """This worker role's node pool in ``spec`` (``ValueError`` for control-plane roles, or
        naming the pools when ``spec`` has none of that name)."""
        if self.pool is None:
            raise ValueError(f"{self.slug} is not a worker pool")
        for pool in spec.node_pools:
            if pool.name == self.pool:
                return pool
        raise ValueError(f"no node pool {self.pool!r}; pools: {', '.join(p.name for p in spec.node_pools)}")
