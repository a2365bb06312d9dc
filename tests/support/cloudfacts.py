"""What each cloud gives its VMs: host names, DNS names, the addresses its cloud controller
manager publishes on the Node, and what its private DNS resolves. The node-admission rules
cfcr renders (kubelet names, the serving-CSR approver, provider IDs) are checked against these.

Sources: AWS — an instance in a subnet with IP-based host names gets the OS host name
``ip-a-b-c-d`` and the private DNS name ``ip-a-b-c-d.ec2.internal`` in us-east-1,
``ip-a-b-c-d.<region>.compute.internal`` elsewhere, which the VPC resolver answers (EC2 user
guide, "Amazon EC2 instance hostname types"); cloud-provider-aws publishes InternalIP,
InternalDNS and Hostname, both names being the private DNS name (pkg/providers/v1/aws.go,
``NodeAddresses``). GCP — the host name is the instance name and
``<name>.<zone>.c.<project>.internal`` resolves inside the network; the bare name resolves only
through the search domain of a VM's own zone (``<zone>.c.<project>.internal``) in a project with
zonal DNS (the default for new projects; "Zonal DNS" in the Compute Engine internal DNS guide),
so the model, for a pod anywhere in the cluster, resolves the zonal name only;
cloud-provider-gcp publishes InternalIP (and ExternalIP), the kubelet's Hostname stays. Azure — the host name is the VM's
computer name, which Azure DNS resolves inside the virtual network; cloud-provider-azure
publishes Hostname (the node name) and InternalIP.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VmFacts:
    """One VM as its cloud presents it."""

    hostname: str
    """The OS host name (kubeadm's default node name)."""
    address: str
    """The primary private address."""
    ccm_addresses: tuple[tuple[str, str], ...]
    """``status.addresses`` once the cloud controller manager has initialised the Node."""
    resolvable: tuple[str, ...]
    """Names the network's resolver answers with ``address`` (short names through the search
    domain the cloud puts in resolv.conf)."""
    private_dns: str = ""
    """The VM's private DNS name, where the cloud has one (AWS: the instance's ``local-hostname``)."""

    def resolve(self, name: str) -> list[str]:
        return [self.address] if name in self.resolvable else []


def aws_vm(address: str, region: str) -> VmFacts:
    """An EC2 instance with an IP-based host name."""
    short = f"ip-{address.replace('.', '-')}"
    domain = "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"
    private_dns = f"{short}.{domain}"
    return VmFacts(short, address,
                   (("InternalIP", address), ("InternalDNS", private_dns), ("Hostname", private_dns)),
                   (short, private_dns), private_dns)


def gcp_vm(instance: str, address: str, zone: str, project: str) -> VmFacts:
    """A Compute Engine instance (its host name is its name)."""
    return VmFacts(instance, address, (("InternalIP", address), ("Hostname", instance)),
                   (f"{instance}.{zone}.c.{project}.internal",))


def azure_vm(computer_name: str, address: str) -> VmFacts:
    """An Azure VM or scale-set instance (its host name is its computer name)."""
    return VmFacts(computer_name, address, (("Hostname", computer_name), ("InternalIP", address)),
                   (computer_name,))
