"""A ``--show-secrets`` render of a stack, read as the cloud would serve it to the nodes.

:func:`render_cluster` runs the product's offline render (``python -m cfcr render --stack NAME
--show-secrets``, in-process) and gives the harness what a deploy hands each VM: its role's
user-data, the secret store as the role's identity may read it, the instance facts the cloud
would give (instance id, zone, host name), and the cluster's published endpoints.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from cfcr import channels
from cfcr.channels import Release
from cfcr.config import ClusterSpec, load_spec, read_stack_config
from cfcr.render.mocks import unwrap
from cfcr.render.render import RenderResult, render_stack
from tests.support.validators import load_cloud_config as cloud_config


class UnsupportedCloud(RuntimeError):
    """The harness reads this cloud's secret store and identities only once the cloud has them."""


@dataclass(frozen=True)
class Member:
    """A control-plane member as rendered."""

    index: int
    name: str
    address: str
    instance_id: str
    zone: str


@dataclass
class RenderedCluster:
    """One stack's render, with the secret values shown."""

    stack: str
    spec: ClusterSpec
    result: RenderResult
    out_dir: Path
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def release(self) -> Release:
        return channels.resolve(self.spec.kubernetes.version)

    @property
    def name(self) -> str:
        assert self.spec.name is not None
        return self.spec.name

    def rows(self, type_token: str) -> list[Any]:
        return [r for r in self.result.resources if r.type == type_token]

    def user_data(self, role: str) -> bytes:
        return self.result.user_data[role]

    def files(self, role: str) -> dict[str, str]:
        """The role's ``write_files``: path -> content."""
        return {f["path"]: f.get("content", "") for f in cloud_config(self.user_data(role))["write_files"]}

    def kubeadm_documents(self, role: str) -> list[dict[str, Any]]:
        return list(yaml.safe_load_all(self.files(role)["/etc/cfcr/kubeadm.yaml.tmpl"]))

    @property
    def roles(self) -> list[str]:
        return sorted(self.result.user_data)

    @property
    def worker_roles(self) -> list[str]:
        return [r for r in self.roles if r.startswith("worker-")]

    @cached_property
    def members(self) -> list[Member]:
        listed = self.result.exports["controlPlaneMembers"]
        ids = self.result.exports.get("controlPlaneInstanceIds") or [f"i-{i:017x}" for i in range(len(listed))]
        zones = self._member_zones(len(listed))
        return [Member(i, m["name"], m["address"], str(ids[i]), zones[i]) for i, m in enumerate(listed)]

    def _member_zones(self, count: int) -> list[str]:
        zones = self.spec.control_plane.zones or [f"{self.spec.region}{c}" for c in "abcdef"]
        return [zones[i % len(zones)] for i in range(count)]

    @property
    def admin_kubeconfig(self) -> str:
        return str(self.result.exports["adminKubeconfig"])

    def api_host_names(self) -> list[str]:
        """Every API host name a node or a client is given (kubeadm endpoint, kubeconfigs)."""
        names = []
        for url in (self.result.exports.get("apiServerUrl"), self.result.exports.get("privateApiServerUrl")):
            if url:
                names.append(str(url).split("://", 1)[1].rsplit(":", 1)[0])
        for role in self.roles:
            for doc in self.kubeadm_documents(role):
                endpoint = doc.get("controlPlaneEndpoint") or doc.get("discovery", {}).get("bootstrapToken", {}).get(
                    "apiServerEndpoint")
                if endpoint:
                    names.append(str(endpoint).rsplit(":", 1)[0])
        return list(dict.fromkeys(names))

    # ------------------------------------------------------------------ the secret store
    @cached_property
    def secret_values(self) -> dict[str, str]:
        """Secret id (its name in the store: Secrets Manager's name, Secret Manager's secret id, Key
        Vault's secret name) -> value."""
        if self.spec.cloud == "aws":
            by_arn = {r.id: unwrap(r.inputs)["name"] for r in self.rows("aws:secretsmanager/secret:Secret")}
            return {by_arn[unwrap(v.inputs)["secretId"]]: str(unwrap(v.inputs)["secretString"])
                    for v in self.rows("aws:secretsmanager/secretVersion:SecretVersion")}
        if self.spec.cloud == "gcp":
            by_name = {r.id: unwrap(r.inputs)["secretId"] for r in self.rows("gcp:secretmanager/secret:Secret")}
            return {by_name[unwrap(v.inputs)["secret"]]: str(unwrap(v.inputs)["secretData"])
                    for v in self.rows("gcp:secretmanager/secretVersion:SecretVersion")}
        if self.spec.cloud == "azure":
            return {str(unwrap(r.inputs)["secretName"]): str(unwrap(r.inputs)["properties"]["value"])
                    for r in self.rows("azure-native:keyvault:Secret")}
        raise UnsupportedCloud(f"the harness reads no {self.spec.cloud} secret store yet")

    def node_network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.spec.networking.node_cidr)


def render_cluster(stack: str, out_dir: Path, config: dict[str, Any] | None = None,
                   project_dir: Path | None = None) -> RenderedCluster:
    """Render ``stack`` with secrets shown into ``out_dir`` (``config`` overrides the stack file)."""
    raw = config if config is not None else read_stack_config(stack, project_dir)
    result = render_stack(stack, out_dir, show_secrets=True, config=raw)
    spec = load_spec(raw, stack)
    return RenderedCluster(stack, spec, result, out_dir, dict(raw))
