"""The cloud side of the control-plane harness (tests/support/controlplane.py), one class per
cloud, chosen by the render's ``cfcr:cloud``: what a VM of the render gets from its cloud.

Each gives the harness the same things, read from the render:

* the **instance facts** of a member's VM and of a pool's VM (host name, address, zone,
  instance id, provider ID, what its cloud's DNS resolves: :mod:`tests.support.cloudfacts`);
* the **API endpoints** the render hands out (addresses of the load balancers, DNS names);
* the **metadata service** at ``169.254.169.254`` and the **API stand-in** the node hook calls,
  run as processes in the metadata host's network namespace, with the environment that points
  a node's hook at them;
* the **secret store**, holding the render's secret values and judging each read by the
  render's own grants (AWS: the IAM policies of the instance profile the VM holds;
  GCP: ``secretAccessor`` of the VM's service account on the secret; Azure: the Key Vault role
  assignments of the VM's user-assigned identity on the secret).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from cfcr.azure.secrets import SECRETS_OFFICER, SECRETS_USER
from cfcr.config.topology import zones as zone_plans
from cfcr.render.mocks import unwrap
from tests.support import azureapi
from tests.support.aws_render import AwsIdentities, aws_identities
from tests.support.awsapi import ENDPOINT, Cloud
from tests.support.cloudfacts import VmFacts, aws_vm, azure_vm, gcp_vm
from tests.support.gcpapi import PROJECT_NUMBER, harness_node_env
from tests.support.netns import Host
from tests.support.rendered import Member, RenderedCluster

Spawn = Callable[[str, Sequence[str]], object]
"""The harness's ``spawn(name, command)``: a long-running process with its log."""


class CloudError(RuntimeError):
    """The render does not say what the harness needs to launch a VM."""


@dataclass(frozen=True)
class Launch:
    """Where and as what a VM launches."""

    address: str
    zone: str
    hostname: str
    instance_id: str


class NodeLike(Protocol):
    """What a cloud reads from a harness node (controlplane.Node)."""

    role: str
    instance_id: str
    zone: str
    member: Member | None

    @property
    def host(self) -> Host: ...

    @property
    def hostname(self) -> str: ...


class HarnessCloud(Protocol):
    """One cloud as the harness needs it (module docstring)."""

    state_file: Path

    def node_env(self) -> dict[str, str]: ...

    def api_addresses(self) -> tuple[str, str | None]: ...

    def api_names(self, internal: str, public: str | None) -> dict[str, str]: ...

    def member_launch(self, member: Member, render: RenderedCluster | None = None) -> Launch: ...

    def worker_launch(self, role: str, index: int) -> Launch: ...

    def launch(self, node: NodeLike, render: RenderedCluster | None = None) -> None: ...

    def forget(self, node: NodeLike) -> None: ...

    def start(self, spawn: Spawn, host: Host) -> None: ...

    def state(self) -> dict[str, Any]: ...

    def update(self, render: RenderedCluster, *, prune: bool) -> None: ...

    def provider_id(self, node: NodeLike) -> str: ...

    def vm(self, node: NodeLike) -> VmFacts: ...


def _short_hash(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


# ============================================================================ AWS

@dataclass
class AwsCloud:
    """EC2 as the harness plays it: IMDSv2 (tests/support/imds.py) and Secrets Manager and EC2
    (tests/support/awsapi.py, judged by the render's IAM policies)."""

    render: RenderedCluster
    workdir: Path
    identities: AwsIdentities | None = None
    cloud_render: RenderedCluster | None = None
    """The render the secrets were last updated from (:meth:`update`); None: :attr:`render`."""
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    """Address -> the VM's metadata paths (imds.json, which the IMDS stand-in reads on each request)."""

    @property
    def state_file(self) -> Path:
        return self.workdir / "aws-state.json"

    def _ids(self) -> AwsIdentities:
        assert self.identities is not None, "the cloud is initialised with the network (init)"
        return self.identities

    def init(self) -> None:
        render = self.render
        ids = aws_identities(render.result.resources)
        secrets = {str(unwrap(r.inputs)["name"]): {"arn": str(r.outputs["arn"]), "value": render.secret_values[
            str(unwrap(r.inputs)["name"])]} for r in render.rows("aws:secretsmanager/secret:Secret")}
        role_arn = next(iter(ids.role_arns.values()))
        Cloud(self.state_file).save({
            "region": render.spec.region,
            "account": role_arn.split(":")[4],
            "instances": {},
            "secrets": secrets,
            "policies": {p: ids.policies_of_profile(p) for p in ids.profile_roles},
            "profile_arns": ids.profile_arns,
            "role_arns": {p: ids.role_arns[r] for p, r in ids.profile_roles.items()},
            "log": [],
        })
        self.identities = ids

    def node_env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": ENDPOINT}  # the node's AWS calls go to tests/support/awsapi.py

    def api_addresses(self) -> tuple[str, str | None]:
        """The network load balancer has DNS names, no fixed address: the harness takes two
        from the top of the node network, which the topology plan leaves unused."""
        hosts = list(self.render.node_network().hosts())
        return str(hosts[-2]), str(hosts[-3])

    def api_names(self, internal: str, public: str | None) -> dict[str, str]:
        names = self.render.api_host_names()
        private = [n for n in names if n.endswith(".internal") and not n.endswith("amazonaws.com")]
        return {n: (internal if n in private or public is None else public) for n in names}

    def member_launch(self, member: Member, render: RenderedCluster | None = None) -> Launch:
        return Launch(member.address, member.zone, aws_vm(member.address, self.render.spec.region).hostname,
                      member.instance_id)

    def worker_launch(self, role: str, index: int) -> Launch:
        """From the pool's first private subnet in the render, above the addresses the
        topology plan reserves."""
        subnets = sorted((r for r in self.render.rows("aws:ec2/subnet:Subnet") if "-private-" in r.name),
                         key=lambda r: r.name)
        if not subnets:
            raise CloudError("the render has no private subnets to place a worker in")
        inputs = subnets[index % len(subnets)].inputs
        network = ipaddress.IPv4Network(str(inputs["cidrBlock"]))
        address = str(network.network_address + 100 + index)
        return Launch(address, str(inputs["availabilityZone"]), aws_vm(address, self.render.spec.region).hostname,
                      "i-0" + _short_hash(f"{role}/{index}", 16))

    def _template(self, node: NodeLike, render: RenderedCluster | None) -> tuple[str, dict[str, str]]:
        """(launch template id, instance tags) a VM of the node's role launches with in the
        render (a member's: in ``render`` when given)."""
        if node.member is not None:
            instance = next(r for r in (render or self.render).rows("aws:ec2/instance:Instance")
                            if unwrap(r.inputs)["privateIp"] == node.member.address)
            args = unwrap(instance.inputs)
            return str(args["launchTemplate"]["id"]), dict(args["tags"])
        pool = node.role.removeprefix("worker-")
        for template_id, tags in self._ids().template_instance_tags.items():
            if tags.get("cfcr.io/pool") == pool:
                return template_id, tags
        raise CloudError(f"no launch template in the render for pool {pool}")

    def launch(self, node: NodeLike, render: RenderedCluster | None = None) -> None:
        """The VM exists in the AWS stand-in: its address, id, tags and launch profile."""
        template_id, tags = self._template(node, render)
        with Cloud(self.state_file).update() as state:
            state["instances"][node.host.address] = {
                "id": node.instance_id, "profile": self._ids().template_profiles[template_id],
                "association": f"iip-assoc-{node.instance_id[2:]}", "tags": dict(tags),
                "launched": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}
        region = self.render.spec.region
        vm = aws_vm(node.host.address, region)
        self.metadata[vm.address] = {
            "instance-id": node.instance_id,
            "placement/availability-zone": node.zone,
            "placement/region": region,
            "local-ipv4": vm.address,
            "local-hostname": vm.private_dns,
            "hostname": vm.private_dns,
        }
        self._write_metadata()

    def forget(self, node: NodeLike) -> None:
        with Cloud(self.state_file).update() as state:
            state["instances"].pop(node.host.address, None)
        self.metadata.pop(node.host.address, None)
        self._write_metadata()

    def _write_metadata(self) -> None:
        path = self.workdir / "imds.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.metadata, indent=2))
        tmp.replace(path)  # the stand-in reads it on each request: never half-written

    def start(self, spawn: Spawn, host: Host) -> None:
        self._write_metadata()
        spawn("imds", host.command(sys.executable, "-m", "tests.support.imds", str(self.workdir / "imds.json")))
        spawn("awsapi", host.command(sys.executable, "-m", "tests.support.awsapi", str(self.state_file)))

    def state(self) -> dict[str, Any]:
        """Instances and their profiles, secret values, calls."""
        return Cloud(self.state_file).load()

    def update(self, render: RenderedCluster, *, prune: bool) -> None:
        """Every instance profile of ``render`` with its role's policies; its new secrets
        stored, and those whose rendered value changed since the render the cloud was last
        updated from given the new value. Keys keep theirs: Pulumi keeps a key in its state
        while its inputs stay, where the offline render makes RSA keys afresh each time.
        ``prune``: what ``render`` no longer has goes."""
        before = self.cloud_render or self.render
        ids = aws_identities(render.result.resources)
        with Cloud(self.state_file).update() as state:
            for row in render.rows("aws:secretsmanager/secret:Secret"):
                name = str(unwrap(row.inputs)["name"])
                value = render.secret_values[name]
                stored = state["secrets"].get(name)
                if stored is None:
                    state["secrets"][name] = {"arn": str(row.outputs["arn"]), "value": value}
                elif value != before.secret_values.get(name) and not _is_key(value):
                    stored["value"] = value
                    stored["versions"] = int(stored.get("versions", 1)) + 1
            state["policies"].update({p: ids.policies_of_profile(p) for p in ids.profile_roles})
            state["profile_arns"].update(ids.profile_arns)
            state["role_arns"].update({p: ids.role_arns[r] for p, r in ids.profile_roles.items()})
            if prune:
                for name in set(state["secrets"]) - set(render.secret_values):
                    del state["secrets"][name]
                for profile in set(state["profile_arns"]) - set(ids.profile_arns):
                    for key in ("policies", "profile_arns", "role_arns"):
                        state[key].pop(profile, None)
        old = self._ids()
        self.identities = ids if prune else AwsIdentities(
            *({**getattr(old, f.name), **getattr(ids, f.name)} for f in fields(AwsIdentities)))
        self.cloud_render = render

    def provider_id(self, node: NodeLike) -> str:
        return f"aws:///{node.zone}/{node.instance_id}"

    def vm(self, node: NodeLike) -> VmFacts:
        return aws_vm(node.host.address, self.render.spec.region)


def _is_key(value: str) -> bool:
    return any(f"{kind} KEY-----" in value for kind in ("PRIVATE", "PUBLIC"))


# ============================================================================ GCP

SECRET_ACCESSOR = "roles/secretmanager.secretAccessor"


@dataclass
class GcpCloud:
    """Compute Engine as the harness plays it: one process of tests/support/gcpapi.py answers
    the metadata server (each VM its name, zone, project and its service account's token) and
    Secret Manager, holding the render's SecretVersion values and judging each read by the
    render's SecretIamMember grants (``secretAccessor`` of the VM's service account)."""

    render: RenderedCluster
    workdir: Path
    cloud_render: RenderedCluster | None = None
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Address -> {name, zone, service_account}: the VMs as the metadata server answers."""

    @property
    def state_file(self) -> Path:
        return self.workdir / "gcp-state.json"

    @property
    def log_file(self) -> Path:
        return self.workdir / "gcp-secret-reads.jsonl"

    @property
    def project(self) -> str:
        return str(self.render.result.exports["project"])

    def _accessors(self, render: RenderedCluster) -> dict[str, list[str]]:
        """Secret id -> the service accounts granted ``secretAccessor`` on it in ``render``."""
        out: dict[str, list[str]] = {}
        for row in render.rows("gcp:secretmanager/secretIamMember:SecretIamMember"):
            args = unwrap(row.inputs)
            if args["role"] != SECRET_ACCESSOR:
                continue
            member = str(args["member"])
            if not member.startswith("serviceAccount:"):
                raise CloudError(f"secret {args['secretId']}: grant to {member}, not a service account")
            out.setdefault(str(args["secretId"]), []).append(member.removeprefix("serviceAccount:"))
        return out

    def _save(self, secrets: Mapping[str, str], accessors: Mapping[str, Sequence[str]]) -> None:
        state = {"project": self.project, "project_number": PROJECT_NUMBER, "instances": self.instances,
                 "secrets": dict(secrets), "accessors": {k: sorted(v) for k, v in accessors.items()}}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)  # the stand-in reads it on each request: never half-written

    def _stored(self) -> dict[str, Any]:
        return dict(json.loads(self.state_file.read_text()))

    def init(self) -> None:
        self.log_file.touch()
        self._save(self.render.secret_values, self._accessors(self.render))

    def node_env(self) -> dict[str, str]:
        return harness_node_env()

    def api_addresses(self) -> tuple[str, str | None]:
        """The rendered addresses: the internal proxy load balancer's (what api.<cluster>.cfcr.internal
        resolves to in the private zone) and the public one's (when the API is public)."""
        exports = self.render.result.exports
        public = exports.get("apiLoadBalancerAddress")
        return str(exports["internalApiLoadBalancerAddress"]), (str(public) if public else None)

    def api_names(self, internal: str, public: str | None) -> dict[str, str]:
        """The private zone's record (the render's RecordSet) and, where the public endpoint is a
        DNS name (``networking.apiDnsName``), that name; addresses stay addresses."""
        names: dict[str, str] = {}
        for row in self.render.rows("gcp:dns/recordSet:RecordSet"):
            args = unwrap(row.inputs)
            if args["type"] == "A":
                names[str(args["name"]).rstrip(".")] = str(args["rrdatas"][0])
        for name in self.render.api_host_names():
            try:
                ipaddress.ip_address(name)
            except ValueError:
                if name not in names:
                    names[name] = public or internal
        if any(address not in (internal, public) for address in names.values()):
            raise CloudError(f"the render's API names point elsewhere than its load balancers: {names}")
        return names

    def _instance_row(self, address: str, render: RenderedCluster | None) -> dict[str, Any]:
        for row in (render or self.render).rows("gcp:compute/instance:Instance"):
            args = unwrap(row.inputs)
            if any(n.get("networkIp") == address for n in args["networkInterfaces"]):
                return dict(args)
        raise CloudError(f"no gcp:compute/instance:Instance at {address} in the render")

    def member_launch(self, member: Member, render: RenderedCluster | None = None) -> Launch:
        args = self._instance_row(member.address, render)
        return Launch(member.address, str(args["zone"]), str(args["name"]), member.instance_id)

    def worker_launch(self, role: str, index: int) -> Launch:
        """A VM the pool's zonal managed instance groups (``<cluster>-<pool>-z<k>``) create: named
        ``<baseInstanceName>-<4 characters>`` as a MIG names its VMs, in the group's zone, at an
        address of that zone's share of the node network above the ones the topology plan
        reserves (the subnetwork is regional: GCE picks any free address)."""
        pool = role.removeprefix("worker-")
        prefix = f"{self.render.name}-{pool}-z"
        groups = sorted((r for r in self.render.rows("gcp:compute/instanceGroupManager:InstanceGroupManager")
                         if str(unwrap(r.inputs)["name"]).startswith(prefix)), key=lambda r: str(unwrap(r.inputs)["name"]))
        if not groups:
            raise CloudError(f"no managed instance group {prefix}<k> in the render for pool {pool}")
        k = index % len(groups)
        args = unwrap(groups[k].inputs)
        plan = zone_plans(self.render.spec)[k]
        address = ipaddress.IPv4Network(plan.private_cidr).network_address + 100 + index
        subnets = [ipaddress.IPv4Network(str(unwrap(r.inputs)["ipCidrRange"]))
                   for r in self.render.rows("gcp:compute/subnetwork:Subnetwork")
                   if str(unwrap(r.inputs).get("purpose", "PRIVATE")) == "PRIVATE"]
        if not any(address in s for s in subnets):
            raise CloudError(f"{address} (zone plan {plan.private_cidr}) is in no node subnetwork of the render: {subnets}")
        digest = _short_hash(f"{role}/{index}", 15)
        suffix = "".join("abcdefghijklmnopqrstuvwxyz0123456789"[int(c, 16)] for c in digest[:4])
        return Launch(str(address), str(args["zone"]), f"{args['baseInstanceName']}-{suffix}", str(int(digest, 16)))

    def _service_account(self, node: NodeLike, render: RenderedCluster | None) -> str:
        """A member's: its instance's; a pool VM's: its instance template's."""
        if node.member is not None:
            return str(self._instance_row(node.member.address, render)["serviceAccount"]["email"])
        pool = node.role.removeprefix("worker-")
        for row in (render or self.render).rows("gcp:compute/instanceTemplate:InstanceTemplate"):
            args = unwrap(row.inputs)
            if (args.get("labels") or {}).get("cfcr-pool") == pool:
                return str(args["serviceAccount"]["email"])
        raise CloudError(f"no instance template in the render for pool {pool}")

    def launch(self, node: NodeLike, render: RenderedCluster | None = None) -> None:
        self.instances[node.host.address] = {"name": node.hostname, "zone": node.zone,
                                             "service_account": self._service_account(node, render)}
        stored = self._stored()
        self._save(stored["secrets"], stored["accessors"])

    def forget(self, node: NodeLike) -> None:
        self.instances.pop(node.host.address, None)
        stored = self._stored()
        self._save(stored["secrets"], stored["accessors"])

    def start(self, spawn: Spawn, host: Host) -> None:
        spawn("gcpapi", host.command(sys.executable, "-m", "tests.support.gcpapi", str(self.state_file),
                                     str(self.log_file)))

    def state(self) -> dict[str, Any]:
        """Project, instances, secret values and accessors; ``log``: every Secret Manager read
        (client, service_account, secret, status)."""
        reads = [json.loads(line) for line in self.log_file.read_text().splitlines() if line]
        return {**self._stored(), "log": reads}

    def update(self, render: RenderedCluster, *, prune: bool) -> None:
        """As :meth:`AwsCloud.update`: ``render``'s new secrets, changed values (keys keep
        theirs), and its grants; ``prune``: what ``render`` no longer has goes."""
        before = self.cloud_render or self.render
        stored = self._stored()
        secrets, accessors = dict(stored["secrets"]), {k: set(v) for k, v in stored["accessors"].items()}
        for name, value in render.secret_values.items():
            if name not in secrets or (value != before.secret_values.get(name) and not _is_key(value)):
                secrets[name] = value
        granted = self._accessors(render)
        if prune:
            secrets = {k: v for k, v in secrets.items() if k in render.secret_values}
            accessors = {k: set(v) for k, v in granted.items()}
        else:
            for name, emails in granted.items():
                accessors.setdefault(name, set()).update(emails)
        self._save(secrets, {k: sorted(v) for k, v in accessors.items()})
        self.cloud_render = render

    def provider_id(self, node: NodeLike) -> str:
        return f"gce://{self.project}/{node.zone}/{node.hostname}"

    def vm(self, node: NodeLike) -> VmFacts:
        return gcp_vm(node.hostname, node.host.address, node.zone, self.project)


# ============================================================================ Azure

KEY_VAULT_ROLES = {SECRETS_USER: azureapi.USER, SECRETS_OFFICER: azureapi.OFFICER}
"""Built-in role definition GUID -> the Key Vault role the stand-in judges by (cfcr.azure.secrets)."""
SCALE_SET_READS = ("Microsoft.Compute/virtualMachineScaleSets/read",
                   "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read")
"""What a role must allow for the ARM listings of the join candidate check."""


@dataclass
class AzureCloud:
    """Azure as the harness plays it: one process of tests/support/azureapi.py answers IMDS (each
    VM its user-assigned identities' tokens, its tags, resource id and ``vmId``), Key Vault (the
    render's secret values, each read or write judged by the render's role assignments on that
    secret: "Key Vault Secrets User" reads, "Secrets Officer" also writes a new version) and the
    two ARM listings of the join candidate check (the pools' scale sets and their instances with
    their ``timeCreated``, readable by identities whose role assignment on the resource group
    allows it)."""

    render: RenderedCluster
    workdir: Path
    cloud_render: RenderedCluster | None = None
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Address -> {identities, tags, resource_id, vm_id}: the VMs as IMDS answers."""
    scale_set_instances: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    """Scale set name -> its instances (computer_name, time_created, provisioning_state)."""
    lb_hairpin: bool = False
    """An Azure load balancer does not carry a backend's packets to its own frontend (the API
    load balancer's stand-in drops them: a member must reach the API on itself)."""

    @property
    def state_file(self) -> Path:
        return self.workdir / "azure-state.json"

    @property
    def log_file(self) -> Path:
        return self.workdir / "azure-vault-decisions.jsonl"

    @property
    def subscription(self) -> str:
        return str(self.render.result.exports["subscriptionId"])

    @property
    def resource_group(self) -> str:
        return str(self.render.result.exports["resourceGroup"])

    # ------------------------------------------------------------------ the render's identities and grants
    @staticmethod
    def _identities(render: RenderedCluster) -> dict[str, tuple[str, str]]:
        """Identity resource id -> (client id, principal id)."""
        return {str(r.id): (str(r.outputs["clientId"]), str(r.outputs["principalId"]))
                for r in render.rows("azure-native:managedidentity:UserAssignedIdentity")}

    @staticmethod
    def _grants(render: RenderedCluster) -> dict[str, dict[str, set[str]]]:
        """Secret name -> {principal id: Key Vault roles} from the role assignments scoped to a
        secret of the render's vault; an assignment of another role there is an error."""
        (vault,) = render.rows("azure-native:keyvault:Vault")
        prefix = f"{vault.id}/secrets/"
        out: dict[str, dict[str, set[str]]] = {}
        for row in render.rows("azure-native:authorization:RoleAssignment"):
            args = unwrap(row.inputs)
            scope = str(args["scope"])
            if not scope.startswith(prefix):
                continue
            role = str(args["roleDefinitionId"]).rsplit("/", 1)[1]
            if role not in KEY_VAULT_ROLES:
                raise CloudError(f"role assignment {row.name}: role {role} on a secret is not a Key Vault secrets role")
            out.setdefault(scope.removeprefix(prefix), {}).setdefault(str(args["principalId"]), set()).add(
                KEY_VAULT_ROLES[role])
        return out

    @staticmethod
    def _arm_readers(render: RenderedCluster) -> set[str]:
        """Principals assigned, on the resource group (or above), a role of the render that
        allows both scale-set reads (:data:`SCALE_SET_READS`)."""
        group = f"/subscriptions/{render.result.exports['subscriptionId']}/resourceGroups/{render.result.exports['resourceGroup']}"
        roles = {}
        for row in render.rows("azure-native:authorization:RoleDefinition"):
            actions = {a for p in unwrap(row.inputs)["permissions"] for a in p.get("actions", [])}
            roles[str(row.id).rsplit("/", 1)[1]] = all(a in actions for a in SCALE_SET_READS)
        readers = set()
        for row in render.rows("azure-native:authorization:RoleAssignment"):
            args = unwrap(row.inputs)
            if group.startswith(str(args["scope"])) and roles.get(str(args["roleDefinitionId"]).rsplit("/", 1)[1]):
                readers.add(str(args["principalId"]))
        return readers

    def _save(self, secrets: Mapping[str, Sequence[str]], grants: Mapping[str, Mapping[str, set[str]]],
              readers: set[str]) -> None:
        scale_sets = [{"name": str(unwrap(r.inputs)["vmScaleSetName"]), "tags": dict(unwrap(r.inputs)["tags"]),
                       "instances": self.scale_set_instances.get(str(unwrap(r.inputs)["vmScaleSetName"]), [])}
                      for r in (self.cloud_render or self.render).rows("azure-native:compute:VirtualMachineScaleSet")]
        state = {"subscription": self.subscription, "resource_group": self.resource_group,
                 "instances": self.instances, "secrets": {k: list(v) for k, v in secrets.items()},
                 "grants": {k: {p: sorted(r) for p, r in v.items()} for k, v in grants.items()},
                 "arm_readers": sorted(readers), "scale_sets": scale_sets}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)  # the stand-in reads it on each request: never half-written

    def _stored(self) -> dict[str, Any]:
        return dict(json.loads(self.state_file.read_text()))

    def _resave(self) -> None:
        stored = self._stored()
        self._save(stored["secrets"], {k: {p: set(r) for p, r in v.items()} for k, v in stored["grants"].items()},
                   set(stored["arm_readers"]))

    def init(self) -> None:
        self.log_file.touch()
        self._save({k: [v] for k, v in self.render.secret_values.items()}, self._grants(self.render),
                   self._arm_readers(self.render))

    def node_env(self) -> dict[str, str]:
        return azureapi.harness_node_env()

    # ------------------------------------------------------------------ the network
    def api_addresses(self) -> tuple[str, str | None]:
        """The internal load balancer's frontend (what the private zone's record resolves to)
        and the public one's address (when the API is public)."""
        exports = self.render.result.exports
        public = exports.get("apiLoadBalancerAddress")
        return str(exports["internalApiLoadBalancerAddress"]), (str(public) if public else None)

    def api_names(self, internal: str, public: str | None) -> dict[str, str]:
        """The private DNS zone's A records (the render's PrivateRecordSets) and any other API
        name the render hands out (the public one's); addresses stay addresses."""
        names: dict[str, str] = {}
        zones = {str(unwrap(r.inputs)["privateZoneName"]) for r in self.render.rows("azure-native:privatedns:PrivateZone")}
        for row in self.render.rows("azure-native:privatedns:PrivateRecordSet"):
            args = unwrap(row.inputs)
            if args["recordType"] != "A" or args["privateZoneName"] not in zones:
                continue
            (record,) = args["aRecords"]
            names[f"{args['relativeRecordSetName']}.{args['privateZoneName']}"] = str(record["ipv4Address"])
        for name in self.render.api_host_names():
            try:
                ipaddress.ip_address(name)
            except ValueError:
                if name not in names:
                    names[name] = public or internal
        if any(address not in (internal, public) for address in names.values()):
            raise CloudError(f"the render's API names point elsewhere than its load balancers: {names}")
        return names

    # ------------------------------------------------------------------ VMs
    def _vm_row(self, address: str, render: RenderedCluster | None) -> Any:
        """The member's VirtualMachine (the one whose NIC has ``address``)."""
        rows = (render or self.render)
        nics = {str(r.id): r for r in rows.rows("azure-native:network:NetworkInterface")
                if any(c.get("privateIPAddress") == address for c in unwrap(r.inputs)["ipConfigurations"])}
        for row in rows.rows("azure-native:compute:VirtualMachine"):
            refs = [str(n["id"]) for n in unwrap(row.inputs)["networkProfile"]["networkInterfaces"]]
            if any(ref in nics for ref in refs):
                return row
        raise CloudError(f"no azure-native:compute:VirtualMachine with a NIC at {address} in the render")

    def _scale_set(self, pool: str, render: RenderedCluster | None = None) -> Any:
        for row in (render or self.render).rows("azure-native:compute:VirtualMachineScaleSet"):
            if unwrap(row.inputs)["tags"].get("cfcr-pool") == pool:
                return row
        raise CloudError(f"no scale set tagged cfcr-pool={pool} in the render")

    def member_launch(self, member: Member, render: RenderedCluster | None = None) -> Launch:
        row = self._vm_row(member.address, render)
        args = unwrap(row.inputs)
        (zone,) = args["zones"]
        return Launch(member.address, str(zone), str(args["osProfile"]["computerName"]), str(row.outputs["vmId"]))

    def worker_launch(self, role: str, index: int) -> Launch:
        """Instance ``index`` of the pool's scale set (Uniform orchestration): computer name
        ``<computerNamePrefix><instance id in 6 base-36 digits>``, in its zones in turn, at an
        address of the scale set's subnet above the first hundred; ``vmId`` a fresh GUID."""
        pool = role.removeprefix("worker-")
        row = self._scale_set(pool)
        args = unwrap(row.inputs)
        profile = args["virtualMachineProfile"]
        (nic,) = profile["networkProfile"]["networkInterfaceConfigurations"]
        subnet_id = str(nic["ipConfigurations"][0]["subnet"]["id"])
        (subnet,) = [r for r in self.render.rows("azure-native:network:Subnet") if str(r.id) == subnet_id]
        network = ipaddress.IPv4Network(str(unwrap(subnet.inputs)["addressPrefix"]))
        address = network.network_address + 100 + index
        if address not in self.render.node_network():
            raise CloudError(f"{address} of subnet {network} is outside the node network {self.render.node_network()}")
        digits, n = "", index
        for _ in range(6):
            n, d = divmod(n, 36)
            digits = "0123456789abcdefghijklmnopqrstuvwxyz"[d] + digits
        zones = [str(z) for z in args.get("zones") or ["1"]]
        vm_id = str(uuid.UUID(hashlib.sha256(f"{role}/{index}".encode()).hexdigest()[:32], version=4))
        return Launch(str(address), zones[index % len(zones)], f"{profile['osProfile']['computerNamePrefix']}{digits}", vm_id)

    def _vm_facts(self, node: NodeLike, render: RenderedCluster | None) -> tuple[list[str], dict[str, str], str]:
        """(identity resource ids, tags, resource id) of the node's VM or scale-set instance."""
        if node.member is not None:
            row = self._vm_row(node.member.address, render)
            args = unwrap(row.inputs)
            return list(args["identity"]["userAssignedIdentities"]), dict(args["tags"]), str(row.id)
        row = self._scale_set(node.role.removeprefix("worker-"), render)
        args = unwrap(row.inputs)
        instance = str(int(node.hostname[-6:], 36))
        return (list(args["identity"]["userAssignedIdentities"]), dict(args["tags"]),
                f"{row.id}/virtualMachines/{instance}")

    def launch(self, node: NodeLike, render: RenderedCluster | None = None) -> None:
        """The VM (a member's) or scale-set instance (a pool's, created now) exists: IMDS
        answers its caller with its identities, tags, resource id and ``vmId``."""
        identity_ids, tags, resource_id = self._vm_facts(node, render)
        known = self._identities(render or self.render) | self._identities(self.cloud_render or self.render)
        missing = [i for i in identity_ids if i not in known]
        if missing:
            raise CloudError(f"{node.role}: identities {missing} are not in the render")
        self.instances[node.host.address] = {
            "identities": dict(known[i] for i in identity_ids), "tags": tags,
            "resource_id": resource_id, "vm_id": node.instance_id}
        if node.member is None:
            name = resource_id.split("/virtualMachineScaleSets/", 1)[1].split("/", 1)[0]
            listed = self.scale_set_instances.setdefault(name, [])
            listed[:] = [i for i in listed if i["computer_name"] != node.hostname]
            listed.append({"computer_name": node.hostname, "provisioning_state": "Succeeded",
                           "time_created": time.strftime("%Y-%m-%dT%H:%M:%S.0000000+00:00", time.gmtime())})
        self._resave()

    def forget(self, node: NodeLike) -> None:
        self.instances.pop(node.host.address, None)
        for listed in self.scale_set_instances.values():
            listed[:] = [i for i in listed if i["computer_name"] != node.hostname]
        self._resave()

    def start(self, spawn: Spawn, host: Host) -> None:
        spawn("azureapi", host.command(sys.executable, "-m", "tests.support.azureapi", str(self.state_file),
                                       str(self.log_file)))

    def state(self) -> dict[str, Any]:
        """Subscription, group, instances, grants, ARM readers, scale sets; ``secrets``: each
        secret's versions, those the nodes wrote last (``PUT``, 200, in the decision log);
        ``log``: every Key Vault decision (client, principal, method, secret, status, value)."""
        stored = self._stored()
        log = [json.loads(line) for line in self.log_file.read_text().splitlines() if line]
        for entry in log:
            if entry["method"] == "PUT" and entry["status"] == 200:
                stored["secrets"].setdefault(entry["secret"], []).append(entry["value"])
        return {**stored, "log": log}

    def update(self, render: RenderedCluster, *, prune: bool) -> None:
        """As :meth:`GcpCloud.update`: ``render``'s new secrets, changed values as a new version
        (keys keep theirs), its grants and ARM readers; ``prune``: what ``render`` no longer has goes."""
        before = self.cloud_render or self.render
        stored = self._stored()
        secrets = {k: list(v) for k, v in stored["secrets"].items()}
        for name, value in render.secret_values.items():
            if name not in secrets:
                secrets[name] = [value]
            elif value != before.secret_values.get(name) and not _is_key(value):
                secrets[name].append(value)
        grants = {k: {p: set(r) for p, r in v.items()} for k, v in stored["grants"].items()}
        readers = set(stored["arm_readers"])
        if prune:
            secrets = {k: v for k, v in secrets.items() if k in render.secret_values}
            grants, readers = self._grants(render), self._arm_readers(render)
        else:
            for name, principals in self._grants(render).items():
                for principal, roles in principals.items():
                    grants.setdefault(name, {}).setdefault(principal, set()).update(roles)
            readers |= self._arm_readers(render)
        self.cloud_render = render
        self._save(secrets, grants, readers)

    def provider_id(self, node: NodeLike) -> str:
        return f"azure://{self.instances[node.host.address]['resource_id']}"

    def vm(self, node: NodeLike) -> VmFacts:
        return azure_vm(node.hostname, node.host.address)


def cloud_for(render: RenderedCluster, workdir: Path) -> AwsCloud | GcpCloud | AzureCloud:
    """The harness's cloud for ``render`` (its ``cfcr:cloud``)."""
    if render.spec.cloud == "aws":
        return AwsCloud(render, workdir)
    if render.spec.cloud == "gcp":
        return GcpCloud(render, workdir)
    if render.spec.cloud == "azure":
        return AzureCloud(render, workdir)
    raise CloudError(f"the harness plays no {render.spec.cloud} cloud yet (aws, gcp, azure)")
