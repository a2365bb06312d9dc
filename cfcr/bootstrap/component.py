"""ClusterBootstrap: the cloud-neutral heart of every cluster — its PKI, the secrets each
node role may read, and the user-data of every role. Each cloud's ``Cluster`` builds one and
adds machines, networks and a secret store around it (Typhoon keeps its bootstrap apart the
same way)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi

from cfcr import channels
from cfcr.config import ClusterSpec
from cfcr.constants import API_PORT
from cfcr.node import NodeContext, Role, NodeHook, render_user_data, roles_for
from cfcr.node.context import with_node_names
from cfcr.node.delivered import DeliveredScript, delivered_scripts, script_text
from cfcr.pki.component import ByoCa, ClusterPki, ClusterPkiArgs
from cfcr.pki.specs import (
    ControlPlaneMember,
    PkiInputs,
    UserCredential,
    credentials_for_role,
    materials_for_role,
)

TYPE_TOKEN = "cfcr:bootstrap:ClusterBootstrap"


def default_secret_id(cluster: str, material: str) -> str:
    """A secret name every cloud's store accepts: letters, digits and '-' only."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", f"{cluster}-{material}").strip("-")


def pki_inputs(spec: ClusterSpec, members: Sequence[ControlPlaneMember], api_dns_names: Sequence[str],
               api_ips: Sequence[str] = ()) -> PkiInputs:
    """The PKI shape of a cluster spec."""
    pki = spec.pki
    assert spec.name is not None, "load_spec names every cluster"
    return PkiInputs(
        cluster_name=spec.name,
        control_plane_nodes=list(members),
        cluster_domain=spec.networking.cluster_domain,
        service_cidr=spec.networking.service_cidr,
        api_dns_names=list(api_dns_names),
        api_ips=list(api_ips),
        users=[UserCredential(u.name, tuple(u.groups)) for u in pki.users],
        ca_validity_hours=pki.ca_validity_hours,
        leaf_validity_hours=pki.leaf_validity_hours,
        early_renewal_hours=pki.early_renewal_hours,
        key_algorithm=pki.key_algorithm,
        ca_generations=tuple(pki.ca_generations),
        signing_generation=pki.signing_generation,
    )


def role_secrets(role: Role, members: Sequence[ControlPlaneMember],
                 scripts: Sequence[DeliveredScript] = ()) -> list[str]:
    """Every material and credential key a node of ``role`` may read from the secret store, and
    the keys of the ``scripts`` it fetches there (cfcr/node/delivered.py)."""
    member = members[role.index].name if role.index is not None else None
    return [*materials_for_role(role.kind, member), *credentials_for_role(role.kind), *(s.key for s in scripts)]


@dataclass(frozen=True)
class ClusterBootstrapArgs:
    """Arguments of ``ClusterBootstrap``."""

    spec: ClusterSpec
    """The validated cluster spec."""
    api_endpoint: str
    """Host name the API load balancer answers on (a stable name; it is in the serving certificate)."""
    members: Sequence[ControlPlaneMember]
    """Control-plane members with their fixed addresses (static etcd membership)."""
    hook: NodeHook
    """How a node of this cloud reads a secret with its instance identity."""
    etcd_disk_devices: Sequence[pulumi.Input[str]]
    """Block device of each control-plane member's etcd disk, in member order (clouds that
    name disks by volume id pass one Output per member)."""
    api_ips: Sequence[str] = ()
    """Fixed IPs of the API endpoint, if the cloud has them (go into the serving certificate)."""
    secret_id: Callable[[str, str], str] = default_secret_id
    """(cluster, material key) -> the secret's id in the cloud's store."""
    extra_api_names: pulumi.Input[Sequence[str]] = field(default_factory=tuple)
    """Further DNS names for the API serving certificate; may be known only as an Output
    (e.g. the load balancer's generated DNS name)."""


class ClusterBootstrap(pulumi.ComponentResource):
    """The PKI, the per-role secrets and the user-data of one cluster."""

    pki: ClusterPki
    """Every CA, certificate, key and token of the cluster."""
    secrets: dict[str, pulumi.Output[str]]
    """Secret id -> value (secret), to be stored in the cloud's secret store."""
    readers: dict[str, list[str]]
    """Secret id -> the role slugs (``control-plane-0``, ``worker-default``) that may read it."""
    user_data: dict[str, pulumi.Output[bytes]]
    """Role slug -> the exact user-data its VMs boot with (no key material in it)."""
    roles: list[Role]
    """Every role, in order: control-plane members, then worker pools."""
    admin_kubeconfig: pulumi.Output[str]
    """kubeconfig of the ``admin`` user (``kubeadm:cluster-admins``), secret."""
    api_server_url: str
    """``https://<api_endpoint>:6443``."""
    members: list[ControlPlaneMember]
    """The control-plane members, with the Node name each registers on this cloud."""
    script_secret_ids: list[str]
    """Secret ids of the control plane's scripts (cfcr/node/delivered.py): the same for every
    member, so a cloud may grant them in one shared policy."""

    def __init__(self, name: str, args: ClusterBootstrapArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        spec = args.spec
        assert spec.name is not None, "load_spec names every cluster"
        release = channels.resolve(spec.kubernetes.version)
        if len(args.etcd_disk_devices) != len(args.members):
            raise ValueError(
                f"etcd_disk_devices names {len(args.etcd_disk_devices)} disks for {len(args.members)} members"
            )
        # The component's inputs summarise the cluster for policy packs and reviewers.
        summary = {
            "cloud": spec.cloud,
            "kubernetesVersion": release.kubernetes.version,
            "channel": spec.kubernetes.version if spec.kubernetes.version in channels.CHANNELS else None,
            "controlPlaneCount": spec.control_plane.count,
            "cni": spec.cni,
            "production": spec.production,
            "nodePools": [
                {"name": p.name, "minSize": p.min_size, "maxSize": p.max_size, "spot": p.spot} for p in spec.node_pools
            ],
            "auditLogging": True,
            "secretsEncryption": True,
            "tags": dict(spec.tags),
        }
        if spec.cloud == "gcp" and spec.gcp.disk_kms_key:
            summary["diskKmsKey"] = spec.gcp.disk_kms_key  # the policy gcp-disk-keys holds every disk to it
        super().__init__(TYPE_TOKEN, name, summary, opts)
        members = with_node_names(args.members, args.hook)
        self.members = members
        names = [args.api_endpoint]
        if spec.networking.api_dns_name and spec.networking.api_dns_name not in names:
            names.append(spec.networking.api_dns_name)
        extra_names: pulumi.Output[list[str]] = pulumi.Output.from_input(args.extra_api_names).apply(
            lambda extra: [n for n in dict.fromkeys(extra or ()) if n and n not in names])
        self.api_server_url = f"https://{args.api_endpoint}:{API_PORT}"
        self.pki = ClusterPki(
            f"{name}-pki",
            ClusterPkiArgs(
                inputs=pki_inputs(spec, members, names, args.api_ips),
                api_server_url=self.api_server_url,
                extra_api_names=extra_names,
                byo_ca=(
                    ByoCa(cert_pem=spec.pki.byo_ca.certificate, key_pem=pulumi.Output.secret(spec.pki.byo_ca.private_key))
                    if spec.pki.byo_ca
                    else None
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.roles = roles_for(spec)
        scripts = {role.slug: delivered_scripts(spec, role, args.hook) for role in self.roles}
        values: dict[str, pulumi.Output[str]] = {
            **self.pki.materials,
            "bootstrap-token": self.pki.bootstrap_token,
            "encryption-key": self.pki.encryption_key,
            **{s.key: pulumi.Output.from_input(script_text(s.name)) for d in scripts.values() for s in d},
        }
        ids = {key: args.secret_id(spec.name, key) for key in values}
        self.script_secret_ids = sorted({ids[s.key] for d in scripts.values() for s in d})
        self.readers = {}
        for role in self.roles:
            for key in role_secrets(role, members, scripts[role.slug]):
                self.readers.setdefault(ids[key], []).append(role.slug)
        self.secrets = {ids[key]: values[key] for key in values if ids[key] in self.readers}

        def user_data_for(role: Role) -> pulumi.Output[bytes]:
            device = args.etcd_disk_devices[role.index] if role.index is not None else "/dev/null"

            def render(values: list[Any]) -> bytes:
                ca_hash, pins, disk, extra = str(values[0]), [str(v) for v in values[1]], str(values[2]), list(values[3])
                ctx = NodeContext(
                    api_endpoint=args.api_endpoint,
                    control_plane_members=list(members),
                    secret_ids={key: ids[key] for key in role_secrets(role, members, scripts[role.slug])},
                    etcd_disk_device=disk,
                    ca_cert_hash=ca_hash,
                    ca_cert_hashes=pins,
                    api_sans=[*names[1:], *extra],
                )
                return render_user_data(spec, release, ctx, role, args.hook)

            return pulumi.Output.all(self.pki.ca_cert_hash, self.pki.ca_cert_hashes, device, extra_names).apply(render)

        self.user_data = {role.slug: user_data_for(role) for role in self.roles}
        self.admin_kubeconfig = self.pki.admin_kubeconfig
        outputs: Mapping[str, Any] = {
            "apiServerUrl": self.api_server_url,
            "caBundle": self.pki.ca_bundle,
            "adminKubeconfig": self.admin_kubeconfig,
        }
        self.register_outputs(dict(outputs))

    def client_endpoint(self, public_name: pulumi.Input[str] | None) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """The API URL clients use and the admin kubeconfig for it: ``https://<public_name>:6443``
        when the API has a public name, else the private endpoint the nodes use."""
        if public_name is None:
            return pulumi.Output.from_input(self.api_server_url), self.admin_kubeconfig
        url = pulumi.Output.concat("https://", public_name, f":{API_PORT}")
        return url, self.pki.kubeconfig("admin", url)
