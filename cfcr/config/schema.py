"""The stack config schema: every key, its type, its default and its one-line description.

This module is the single source of the config reference in the README
(``python -m cfcr docs config``) and of the scalar keys declared in ``Pulumi.yaml``.
Cross-field rules live in ``checks.py``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from cfcr.config.addons import AddonsConfig
from cfcr.config.aws import AwsConfig
from cfcr.config.azure import AzureConfig
from cfcr.config.gcp import GcpConfig
from cfcr.config.backups import EtcdBackupsConfig
from cfcr.config.mirrors import MirrorsConfig
from cfcr.config.values import (
    Architecture,
    Cidr,
    DnsLabel,
    DnsName,
    FlagName,
    Ipv4Cidr,
    LabelKey,
    LabelValue,
    Model,
    Taint,
    Url,
    parse_taint,
)

Cloud = Literal["aws", "gcp", "azure"]
CniName = Literal["flannel", "canal", "calico", "cilium", "none"]

# Per-cloud default machine sizes (data only: which machine is "small" on each cloud).
DEFAULT_CONTROL_PLANE_SIZE: dict[str, str] = {
    "aws": "m7i.large",
    "gcp": "n2-standard-2",
    "azure": "Standard_D2s_v5",
}
DEFAULT_WORKER_SIZE: dict[str, str] = {
    "aws": "m7i.xlarge",
    "gcp": "n2-standard-4",
    "azure": "Standard_D4s_v5",
}

ParsedTaint = Annotated[Taint, BeforeValidator(parse_taint)]


class KubernetesConfig(Model):
    """Which Kubernetes the cluster runs."""

    version: str = Field(
        "stable",
        description="A channel (`stable`, `edge`) or an exact version the channels know, e.g. `1.36.4`.",
    )


class ControlPlaneConfig(Model):
    """The control-plane nodes (API server, controller manager, scheduler and etcd)."""

    count: Literal[1, 3, 5] = Field(3, description="Number of control-plane nodes (and etcd members): 1, 3 or 5.")
    size: str | None = Field(None, description="Machine size; default per cloud (m7i.large, n2-standard-2, Standard_D2s_v5).")
    zones: list[str] = Field(
        default_factory=list,
        description="Zones to spread the nodes over, round-robin; empty picks the region's first zones.",
    )
    architecture: Architecture = Field("amd64", description="CPU architecture of the machines: amd64 or arm64.")
    root_disk_gb: int = Field(50, ge=20, le=2048, description="Root disk size in GiB.")
    etcd_disk_gb: int = Field(20, ge=10, le=1024, description="Size in GiB of the separate etcd data disk, which outlives the VM.")


class NodePoolConfig(Model):
    """A group of identical worker nodes that heals and scales itself."""

    name: DnsLabel = Field(description="Pool name (a DNS label), unique within the cluster.")
    size: str | None = Field(None, description="Machine size; default per cloud (m7i.xlarge, n2-standard-4, Standard_D4s_v5).")
    min_size: int = Field(1, ge=0, le=1000, description="Fewest nodes the autoscaler keeps.")
    max_size: int = Field(5, ge=1, le=1000, description="Most nodes the autoscaler may add.")
    desired_size: int | None = Field(None, ge=0, le=1000, description="Nodes at creation; default minSize.")
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, description="Node labels, registered by the kubelet.")
    taints: list[ParsedTaint] = Field(default_factory=list, description="Node taints as `key=value:Effect`.")
    spot: bool = Field(False, description="Use spot / preemptible capacity.")
    architecture: Architecture = Field("amd64", description="CPU architecture of the machines: amd64 or arm64.")
    zones: list[str] = Field(default_factory=list, description="Zones for this pool; empty uses the control plane's zones.")
    root_disk_gb: int = Field(100, ge=20, le=4096, description="Root disk size in GiB.")


class ExistingNetworkConfig(Model):
    """Use a network someone else owns instead of creating one."""

    network_id: str = Field(description="The VPC / VPC network / virtual network id.")
    subnet_ids: list[str] = Field(min_length=1, description="Subnets for the nodes, one or more per zone.")
    public_subnet_ids: list[str] = Field(
        default_factory=list, description="Subnets for a public API load balancer (AWS); empty for an internal one."
    )


class NetworkingConfig(Model):
    """Addresses, the cluster domain and who may reach the API."""

    pod_cidr: Ipv4Cidr = Field("10.244.0.0/16", description="Pod network.")
    service_cidr: Ipv4Cidr = Field("10.96.0.0/12", description="Service network, /12 to /24; its first address is the `kubernetes` Service.")
    node_cidr: Ipv4Cidr = Field("10.0.0.0/16", description="Network the VMs live in (created, or the existing network's range).")
    node_cidr_mask_size: int = Field(24, ge=16, le=28, description="Prefix length of each node's slice of the pod network.")
    cluster_domain: DnsName = Field("cluster.local", description="DNS domain of Services.")
    existing_network: ExistingNetworkConfig | None = Field(None, description="Use an existing network and subnets instead of creating them.")
    api_public: bool = Field(False, description="Put the API load balancer on the internet (reachable only from apiAllowedCidrs).")
    api_allowed_cidrs: list[Cidr] = Field(
        default_factory=list, description="CIDRs allowed to reach the API server besides the nodes themselves."
    )
    api_dns_name: DnsName | None = Field(None, description="A DNS name for the API endpoint (a record is created where the cloud supports it).")
    nat_gateways: Literal["none", "single", "perZone"] = Field(
        "single", description="NAT for private nodes: none, single or perZone (none, and only none, when airGapped).")
    air_gapped: bool = Field(
        False,
        description="No internet gateway and no NAT: nodes and controllers reach the cloud's APIs through private "
        "endpoints, everything else comes from cfcr:mirrors; the API is private only (AWS).",
    )


class ByoCaConfig(Model):
    """Bring your own cluster CA (e.g. an intermediate of the company's root)."""

    certificate: str = Field(description="PEM of the CA certificate.")
    private_key: str = Field(description="PEM of the CA private key; set it with `pulumi config set --secret`.")

    @field_validator("certificate")
    @classmethod
    def _pem_cert(cls, value: str) -> str:
        if "-----BEGIN CERTIFICATE-----" not in value:
            raise ValueError("must be a PEM certificate (-----BEGIN CERTIFICATE-----)")
        return value

    @field_validator("private_key")
    @classmethod
    def _pem_key(cls, value: str) -> str:
        if "PRIVATE KEY-----" not in value:
            raise ValueError("must be a PEM private key")
        return value


class UserCredentialConfig(Model):
    """A named client certificate for a person or team, with its RBAC groups."""

    name: DnsLabel = Field(description="User name (the certificate's CN).")
    groups: list[str] = Field(
        min_length=1, max_length=1, description="The RBAC group (the certificate's O); one, as pulumi-tls subjects carry one O."
    )


class PkiConfig(Model):
    """Certificate authorities and certificates."""

    ca_validity_hours: int = Field(87600, ge=24 * 365, le=24 * 365 * 30, description="Lifetime of each CA (default 10 years).")
    leaf_validity_hours: int = Field(8760, ge=24 * 7, le=24 * 365 * 5, description="Lifetime of each leaf certificate (default 1 year).")
    early_renewal_hours: int = Field(720, ge=24, description="Renew leaves this long before expiry on any `pulumi up` (default 30 days).")
    key_algorithm: Literal["ECDSA", "RSA"] = Field("ECDSA", description="Key algorithm: ECDSA (P-256) or RSA.")
    ca_generations: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [1], min_length=1, max_length=2, description="CA generations trusted (two while rotating)."
    )
    signing_generation: int = Field(1, ge=1, description="CA generation that signs leaves.")
    byo_ca: ByoCaConfig | None = Field(None, description="Use your own cluster CA instead of generating one.")
    users: list[UserCredentialConfig] = Field(
        default_factory=list, description="Named user credentials beyond admin and the break-glass super-admin."
    )


class ComponentConfig(Model):
    """Pass-through for one control-plane component."""

    extra_args: dict[FlagName, str] = Field(default_factory=dict, description="Extra command-line flags, without dashes.")


class KubeletConfig(Model):
    """Pass-through for the kubelet."""

    extra_args: dict[FlagName, str] = Field(default_factory=dict, description="Extra kubelet flags, without dashes.")
    config: dict[str, Any] = Field(default_factory=dict, description="Fields merged into the KubeletConfiguration.")


class ComponentsConfig(Model):
    """Pass-through settings for every component, applied untouched."""

    api_server: ComponentConfig = Field(default_factory=ComponentConfig, description="kube-apiserver.")
    controller_manager: ComponentConfig = Field(default_factory=ComponentConfig, description="kube-controller-manager.")
    scheduler: ComponentConfig = Field(default_factory=ComponentConfig, description="kube-scheduler.")
    etcd: ComponentConfig = Field(default_factory=ComponentConfig, description="etcd.")
    kubelet: KubeletConfig = Field(default_factory=KubeletConfig, description="The kubelet on every node.")


class AdmissionConfig(Model):
    """Admission plugins and their configuration."""

    plugins: list[str] = Field(default_factory=list, description="Admission plugins enabled beyond the defaults.")
    configuration: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Entries of the AdmissionConfiguration `plugins` list (name + configuration), passed through.",
    )


class ImageConfig(Model):
    """The machine image of every node."""

    id: str | None = Field(None, description="Image id to use instead of the current Ubuntu LTS (AMI id, image URI or image id).")
    ubuntu_release: Literal["24.04", "26.04"] = Field("24.04", description="Ubuntu LTS release used when no id is given.")


class ClusterSpec(Model):
    """The whole cluster, validated: what one stack file describes."""

    cloud: Cloud = Field(description="Which cloud: aws, gcp or azure.")
    region: str = Field(min_length=2, description="Region to build in, e.g. us-east-1, europe-west4, westeurope.")
    name: DnsLabel | None = Field(None, description="Cluster name; default `cfcr-<stack>`.")
    production: bool = Field(False, description="Mark the stack as production (policies then require 3+ control-plane nodes).")
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig, description="Kubernetes channel or version.")
    cni: CniName = Field("calico", description="Pod network: flannel, canal, calico, cilium, or none (bring your own).")
    cilium_kube_proxy_replacement: bool = Field(False, description="With cilium, replace kube-proxy.")
    control_plane: ControlPlaneConfig = Field(default_factory=ControlPlaneConfig, description="Control-plane nodes.")
    node_pools: list[NodePoolConfig] = Field(
        default_factory=lambda: [NodePoolConfig(name="default", min_size=2, max_size=6, desired_size=3)],
        description="Worker node pools.",
    )
    networking: NetworkingConfig = Field(default_factory=NetworkingConfig, description="Networking.")
    pki: PkiConfig = Field(default_factory=PkiConfig, description="Certificates.")
    registry_mirrors: dict[DnsName, list[Url]] = Field(
        default_factory=dict,
        description="Registry host -> mirror endpoints, e.g. `registry.k8s.io: [https://mirror.local]` "
                    "(pull-through caches with the upstream as fallback; for air-gapped sites use `mirrors`).",
    )
    mirrors: MirrorsConfig = Field(
        default_factory=MirrorsConfig,
        description="The site's mirrors for files, images and charts, and OS packages (docs/airgapped.md).",
    )
    components: ComponentsConfig = Field(default_factory=ComponentsConfig, description="Flags and config passed through to components.")
    admission: AdmissionConfig = Field(default_factory=AdmissionConfig, description="Admission plugins and configuration.")
    cloud_config: dict[str, Any] = Field(default_factory=dict, description="Cloud-provider config, free-form, passed to the cloud controller manager untouched.")
    image: ImageConfig = Field(default_factory=ImageConfig, description="Machine image.")
    addons: AddonsConfig = Field(default_factory=AddonsConfig, description="Kubernetes addons: optional ones, Pod Security, RBAC personas, logs.")
    etcd_backups: EtcdBackupsConfig = Field(
        default_factory=EtcdBackupsConfig, description="Scheduled etcd snapshots to object storage (docs/backups.md).")
    aws: AwsConfig = Field(default_factory=AwsConfig, description="AWS-only settings.")
    gcp: GcpConfig = Field(default_factory=GcpConfig, description="GCP-only settings.")
    azure: AzureConfig = Field(default_factory=AzureConfig, description="Azure-only settings.")
    tags: dict[str, str] = Field(default_factory=dict, description="Tags / labels put on every cloud resource (e.g. owner, cost-centre).")
