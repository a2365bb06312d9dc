"""Node scripts that travel through the cloud's secret store instead of user-data.

A VM's user-data is small (AWS takes 16 KB, gzip included; Azure's custom data cannot change on
a running VM), and the control plane's scripts outgrew it. So user-data carries only what a node
needs to reach its secrets (``lib.sh``, ``bootstrap.sh``, the role's facts and the cloud's
fetch hook); the control plane's other scripts are secret-store entries like its certificates
(material key ``script/<name>``), readable by the control-plane roles only, which
``fetch_all_secrets`` writes to their paths with their modes before the boot uses them.

Nothing in them is secret; the store gives them what it gives the certificates: integrity, the
instance identity as the only reader, and versions. A changed script reaches running members
with the daily maintenance (``maintain.sh`` installs whatever the store holds newer, each file
renamed into place, so a running script keeps its old copy) without replacing any VM.

Pure functions, no Pulumi.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from cfcr.config import ClusterSpec
from cfcr.node.context import Role, join_access
from cfcr.node.paths import LIB_DIR

SCRIPT_KEY_PREFIX = "script/"
SOURCED = frozenset({"member.sh"})
"""Scripts the boot sources (``0644``); every other delivered script runs (``0700``)."""


@dataclass(frozen=True)
class DeliveredScript:
    """One script a control-plane member fetches from the secret store."""

    name: str
    """File name in ``cfcr/node/scripts`` (and on the node, under :data:`LIB_DIR`)."""

    @property
    def mode(self) -> str:
        """``0644`` for what is sourced, ``0700`` for what runs."""
        return "0644" if self.name in SOURCED else "0700"

    @property
    def key(self) -> str:
        """The material key: ``script/<name>``."""
        return script_key(self.name)

    @property
    def path(self) -> str:
        return f"{LIB_DIR}/{self.name}"


def script_key(name: str) -> str:
    """The secret-store material key of script ``name``."""
    return f"{SCRIPT_KEY_PREFIX}{name}"


def is_script_key(key: str) -> bool:
    return key.startswith(SCRIPT_KEY_PREFIX)


def delivered_scripts(spec: ClusterSpec, role: Role, hook: object) -> list[DeliveredScript]:
    """The scripts ``role``'s nodes fetch from the store: none for workers; for the control
    plane the member model, the maintenance, the join-credential rotation when the cloud can
    revoke joined workers' access, and the etcd backup when backups are on and the cloud can
    store snapshots."""
    if not role.is_control_plane:
        return []
    from cfcr.node.backup import upload_command

    names = ["member.sh", "maintain.sh"]
    if join_access(hook) is not None:
        names.append("join-credentials.sh")
    if spec.etcd_backups.enabled and upload_command(hook) is not None:
        names.append("etcd-backup.sh")
    return [DeliveredScript(n) for n in names]


def script_text(name: str) -> str:
    """Script ``name`` as it travels: without comment and blank lines (the commented source is
    in ``cfcr/node/scripts``)."""
    from cfcr.node.userdata import path_defaults, strip_comments

    text = strip_comments(resources.files("cfcr.node").joinpath("scripts", name).read_text("utf-8"))
    shebang, _, body = text.partition("\n")
    # the node paths, for a member whose node.env predates this script (path_defaults)
    return f"{shebang}\n{path_defaults()}{body}"


def delivered_by_key(key: str) -> DeliveredScript:
    """The script of material key ``key``."""
    return DeliveredScript(key.removeprefix(SCRIPT_KEY_PREFIX))
