"""Tags every AWS resource of a cluster carries, and the well-known Kubernetes tag keys."""

from __future__ import annotations

from cfcr.config import ClusterSpec

ETCD_MEMBER_TAG = "cfcr.io/etcd-member"
"""Tag of each etcd data volume (value: the member's name). IAM denies every control-plane
controller any change to a volume or snapshot that carries it (``identity.py``)."""

CSI_DRIVER_TAG = "ebs.csi.aws.com/cluster"
"""Tag the EBS CSI driver puts on every volume and snapshot it creates (value ``true``;
aws-ebs-csi-driver docs/tagging.md). With ``k8sTagClusterId=<cluster>`` the driver also adds
``kubernetes.io/cluster/<cluster>=owned``; its IAM policy requires both."""


def cluster_tag_key(cluster: str) -> str:
    """``kubernetes.io/cluster/<name>``: ownership tag the cloud controller manager, the EBS CSI
    driver and the IAM conditions of this cluster look for."""
    return f"kubernetes.io/cluster/{cluster}"


def base_tags(spec: ClusterSpec, name: str | None = None, *, owned: bool = True) -> dict[str, str]:
    """The user's tags, the cluster ownership tag (unless ``owned`` is False, for things we
    only reference) and a ``Name``."""
    assert spec.name is not None, "load_spec names every cluster"
    tags = dict(spec.tags)
    if owned:
        tags[cluster_tag_key(spec.name)] = "owned"
    tags["cfcr.io/cluster"] = spec.name
    if name:
        tags["Name"] = name
    return tags


def partition_of(region: str) -> str:
    """AWS partition of a region (``aws``, ``aws-cn``, ``aws-us-gov``), for ARNs."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def dns_suffix(region: str) -> str:
    """DNS suffix of a region's service endpoints: ``amazonaws.com.cn`` in the China partition,
    ``amazonaws.com`` elsewhere (``https://<service>.<region>.<suffix>``)."""
    return "amazonaws.com.cn" if partition_of(region) == "aws-cn" else "amazonaws.com"
