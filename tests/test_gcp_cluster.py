"""cfcr.gcp.Cluster under the mock runtime: the GCP stacks' renders, checked for what issue 13
promises (network, firewall by service account, API load balancers, hardened control plane,
zonal self-healing pools, identities, per-secret access, user-data within the metadata limit,
no key material in metadata even when secrets are shown)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from cfcr.config import load_stack
from cfcr.config.topology import control_plane_members
from cfcr.gcp.control_plane import ETCD_DEVICE_NAME
from cfcr.gcp.labels import node_tag
from cfcr.gcp.identity import CONTROL_PLANE_PERMISSIONS, SERVICE_ACCOUNT_USER
from cfcr.gcp.network import node_range, proxy_range
from cfcr.gcp.node_pool import kube_env, split
from cfcr.gcp.secrets import SECRET_ACCESSOR, SECRET_VERSION_MANAGER
from cfcr.render import RecordedResource, RenderResult, render_stack, unwrap
from tests.support.tools import needs
from tests.support.validators import cloud_init_failures, shellcheck_failures

GCP_STACKS = ["gcp-stable", "gcp-edge"]
INSTANCE = "gcp:compute/instance:Instance"
TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
MIG = "gcp:compute/instanceGroupManager:InstanceGroupManager"
FIREWALL = "gcp:compute/firewall:Firewall"
METADATA_VALUE_LIMIT = 256 * 1024


@pytest.fixture(scope="module", params=GCP_STACKS)
def render(request: pytest.FixtureRequest) -> RenderResult:
    return render_stack(request.param, None, show_secrets=True)


def of_type(result: RenderResult, token: str) -> list[RecordedResource]:
    return [r for r in result.resources if r.type == token]


def inputs(r: RecordedResource) -> dict[str, Any]:
    value = unwrap(r.inputs)
    assert isinstance(value, dict)
    return value


def one(result: RenderResult, token: str, name: str) -> RecordedResource:
    (found,) = [r for r in of_type(result, token) if r.name == name]
    return found


# --------------------------------------------------------------------------- shape and network

def test_the_cluster_component_parents_everything(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    assert render.resources[0].type == "cfcr:gcp:Cluster" and render.resources[0].name == spec.name
    pools = of_type(render, "cfcr:gcp:NodePool")
    assert sorted(p.name for p in pools) == sorted(f"{spec.name}-{p.name}" for p in spec.node_pools)
    assert all(r.parent is not None for r in render.resources[1:])


def test_a_custom_mode_network_with_private_google_access_and_cloud_nat(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    (network,) = of_type(render, "gcp:compute/network:Network")
    assert inputs(network)["autoCreateSubnetworks"] is False
    subnets = {inputs(s)["ipCidrRange"]: inputs(s) for s in of_type(render, "gcp:compute/subnetwork:Subnetwork")}
    assert set(subnets) == {node_range(spec), proxy_range(spec)}
    assert subnets[node_range(spec)]["privateIpGoogleAccess"] is True
    assert subnets[proxy_range(spec)]["purpose"] == "REGIONAL_MANAGED_PROXY"
    assert not ipaddress.ip_network(node_range(spec)).overlaps(ipaddress.ip_network(proxy_range(spec)))
    for member in control_plane_members(spec):
        assert ipaddress.ip_address(member.address) in ipaddress.ip_network(node_range(spec))
    (nat,) = of_type(render, "gcp:compute/routerNat:RouterNat")
    assert inputs(nat)["sourceSubnetworkIpRangesToNat"] == "LIST_OF_SUBNETWORKS"


# --------------------------------------------------------------------------- firewall

def test_the_firewall_names_service_accounts_and_opens_nothing_to_the_internet(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    rules = [inputs(r) for r in of_type(render, FIREWALL)]
    assert rules
    for rule in rules:
        assert rule["direction"] == "INGRESS" and rule["targetServiceAccounts"], rule["name"]
        assert "targetTags" not in rule and "sourceTags" not in rule
        assert "0.0.0.0/0" not in rule.get("sourceRanges", []), rule["name"]
        ports = {p for a in rule["allows"] for p in a.get("ports") or []}
        assert "22" not in ports and "3389" not in ports
    by_name = {r["name"]: r for r in rules}
    etcd = by_name[f"{spec.name}-etcd"]
    members = {f"{spec.name}-cp-{i}@example-project.iam.gserviceaccount.com" for i in range(spec.control_plane.count)}
    assert set(etcd["sourceServiceAccounts"]) == set(etcd["targetServiceAccounts"]) == members
    assert etcd["allows"] == [{"protocol": "tcp", "ports": ["2379-2380"]}]
    clients = by_name.get(f"{spec.name}-api-from-clients")
    assert (clients is not None) == spec.networking.api_public
    if clients is not None:
        assert clients["sourceRanges"] == spec.networking.api_allowed_cidrs
    assert proxy_range(spec) in by_name[f"{spec.name}-api-from-lb"]["sourceRanges"]


# --------------------------------------------------------------------------- API endpoint

def test_nodes_reach_the_api_through_an_internal_proxy_never_a_passthrough_internal_balancer(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    rules = [inputs(r) for r in of_type(render, "gcp:compute/forwardingRule:ForwardingRule")]
    assert not [r for r in rules if r["loadBalancingScheme"] == "INTERNAL"], "a passthrough ILB answers a member by itself"
    (internal,) = [r for r in rules if r["loadBalancingScheme"] == "INTERNAL_MANAGED"]
    proxy = of_type(render, "gcp:compute/regionTargetTcpProxy:RegionTargetTcpProxy")
    assert internal["target"] == proxy[0].id and internal["portRange"] == "6443"
    (record,) = [inputs(r) for r in of_type(render, "gcp:dns/recordSet:RecordSet") if "internal" in r.name]
    assert record["name"] == f"api.{spec.name}.cfcr.internal." and record["rrdatas"] == [internal["ipAddress"]]
    (zone,) = of_type(render, "gcp:dns/managedZone:ManagedZone")
    assert inputs(zone)["visibility"] == "private"
    external = [r for r in rules if r["loadBalancingScheme"] == "EXTERNAL"]
    assert len(external) == (1 if spec.networking.api_public else 0)
    (check,) = [inputs(r) for r in of_type(render, "gcp:compute/regionHealthCheck:RegionHealthCheck")]
    assert check["httpsHealthCheck"] == {"port": 6443, "requestPath": "/readyz"}
    for backend in of_type(render, "gcp:compute/regionBackendService:RegionBackendService"):
        assert len(inputs(backend)["backends"]) == len({i % 3 for i in range(spec.control_plane.count)})


def test_the_api_addresses_are_exported(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    assert render.exports["privateApiServerUrl"] == f"https://api.{spec.name}.cfcr.internal:6443"
    if spec.networking.api_public:
        assert render.exports["apiServerUrl"] == f"https://{render.exports['apiLoadBalancerAddress']}:6443"
    else:
        assert render.exports["apiServerUrl"] == render.exports["privateApiServerUrl"]


# --------------------------------------------------------------------------- control plane

def test_members_are_shielded_private_and_keep_their_etcd_disk(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    members = control_plane_members(spec)
    instances = {inputs(r)["name"]: r for r in of_type(render, INSTANCE)}
    assert sorted(instances) == sorted(m.name for m in members)
    disks = {r.id: inputs(r) for r in of_type(render, "gcp:compute/disk:Disk")}
    for i, member in enumerate(members):
        r = instances[member.name]
        props = inputs(r)
        assert props["shieldedInstanceConfig"] == {"enableSecureBoot": True, "enableVtpm": True,
                                                   "enableIntegrityMonitoring": True}
        nic = props["networkInterfaces"][0]
        assert nic["networkIp"] == member.address and not nic.get("accessConfigs")
        assert props["metadata"]["block-project-ssh-keys"] == "TRUE"
        assert props["metadata"]["serial-port-enable"] == "FALSE"
        (attached,) = props["attachedDisks"]
        assert attached["deviceName"] == ETCD_DEVICE_NAME
        disk = next(d for d in disks.values() if f"{member.name}-etcd" == d["name"])
        assert disk["type"] == "pd-ssd" and disk["zone"] == props["zone"]
        assert props["serviceAccount"]["email"].startswith(f"{spec.name}-cp-{i}@")
        if i:
            assert f"{spec.name}-cp-{i - 1}-ready" in " ".join(r.dependencies), "one member at a time"
        gate = one(render, "pulumi-python:dynamic:Resource", f"{spec.name}-cp-{i}-ready")
        assert unwrap(gate.inputs)["machine"] == r.outputs["instanceId"], "the gate waits for this instance"
        reserved = one(render, "gcp:compute/address:Address", f"{spec.name}-cp-{i}-address")
        assert inputs(reserved)["address"] == member.address and inputs(reserved)["addressType"] == "INTERNAL"
    # the addons' readiness gate waits for the instances and the last member gate, and keeps the
    # instances' own ids (a replaced member keeps its name on GCP): a replacement makes it wait again
    ready = next(r for r in render.resources if r.type == "pulumi-python:dynamic:Resource"
                 and r.name.endswith("-readiness-gate"))
    assert f"{spec.name}-cp-{len(members) - 1}-ready" in " ".join(ready.dependencies)
    assert {r.urn for r in instances.values()} <= set(ready.dependencies)
    assert unwrap(ready.inputs)["machines"] == [instances[m.name].outputs["instanceId"] for m in members]


def test_user_data_fits_the_metadata_value_and_carries_no_key_material(render: RenderResult) -> None:
    # the control plane's scripts travel in the store for room, not secrecy (cfcr/node/delivered.py)
    versions = [unwrap(inputs(r)["secretData"]) for r in of_type(render, "gcp:secretmanager/secretVersion:SecretVersion")
                if "-script-" not in str(inputs(r)["secret"])]
    secret_lines = [line for v in versions for line in str(v).splitlines()
                    if len(line) > 12 and "CERTIFICATE" not in line and "PUBLIC KEY" not in line and "#!" not in line]
    assert len(secret_lines) > 20
    kubeconfig = yaml.safe_load(render.exports["adminKubeconfig"])
    secret_lines.append(kubeconfig["users"][0]["user"]["client-key-data"])
    for r in [*of_type(render, INSTANCE), *of_type(render, TEMPLATE)]:
        metadata = inputs(r)["metadata"]
        assert len(metadata["user-data"].encode()) <= METADATA_VALUE_LIMIT
        blob = json.dumps(metadata)
        assert "PRIVATE KEY" not in blob, r.name
        leaked = [line for line in secret_lines if line in blob and not line.startswith(("set -", "if ", "fi"))]
        assert not leaked, f"{r.name} carries secret material"


# --------------------------------------------------------------------------- pools

def test_one_self_healing_zonal_group_per_zone_rolling_without_capacity_loss(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    groups = [inputs(r) for r in of_type(render, MIG)]
    assert len(groups) == len(spec.node_pools) * 3
    for pool in spec.node_pools:
        mine = sorted((g for g in groups if g["name"].startswith(f"{spec.name}-{pool.name}-z")), key=lambda g: g["name"])
        assert len({g["zone"] for g in mine}) == 3
        assert sum(g["targetSize"] for g in mine) == (pool.desired_size if pool.desired_size is not None else pool.min_size)
        for g in mine:
            assert g["autoHealingPolicies"]["initialDelaySec"] >= 300
            policy = g["updatePolicy"]
            assert policy["type"] == "PROACTIVE" and policy["maxUnavailableFixed"] == 0 and policy["maxSurgeFixed"] >= 1
    assert split(7, 3) == [3, 2, 2] and split(1, 3, at_least=1) == [1, 1, 1]


def test_templates_are_shielded_and_carry_the_autoscaler_node_shape(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    templates = {inputs(t)["labels"]["cfcr-pool"]: inputs(t) for t in of_type(render, TEMPLATE)}
    for pool in spec.node_pools:
        t = templates[pool.name]
        assert t["shieldedInstanceConfig"]["enableSecureBoot"] is True
        assert not t["networkInterfaces"][0].get("accessConfigs")
        assert t["metadata"]["kube-env"] == kube_env(spec, pool)
        assert f"cfcr.io/pool={pool.name}" in t["metadata"]["kube-env"], "the label the kubelet registers too"
        assert t["scheduling"]["provisioningModel"] == ("SPOT" if pool.spot else "STANDARD")
        assert t["serviceAccount"]["email"].startswith(f"{spec.name}-w-{pool.name}@")
        assert t["tags"] == [node_tag(str(spec.name))], "the tag the CCM's Service firewall rules target"
        for key, value in pool.labels.items():
            assert f"{key}={value}" in t["metadata"]["kube-env"]


# --------------------------------------------------------------------------- identity and secrets

def test_workers_get_no_project_role_and_members_a_suffixed_custom_role(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    bindings = [inputs(r) for r in of_type(render, "gcp:projects/iAMMember:IAMMember")]
    assert len(bindings) == spec.control_plane.count
    assert all("-cp-" in b["member"] and b["role"].startswith("projects/example-project/roles/cfcr_") for b in bindings)
    (role,) = [inputs(r) for r in of_type(render, "gcp:projects/iAMCustomRole:IAMCustomRole")]
    assert role["roleId"].rsplit("_", 1)[1] != "" and "-" not in role["roleId"]
    assert set(role["permissions"]) == set(CONTROL_PLANE_PERMISSIONS)
    assert {"compute.instances.attachDisk", "compute.instanceGroupManagers.update"} <= set(role["permissions"])
    acts = [inputs(r) for r in of_type(render, "gcp:serviceaccount/iAMMember:IAMMember")]
    assert len(acts) == spec.control_plane.count * len(spec.node_pools)
    assert all(a["role"] == SERVICE_ACCOUNT_USER and "-w-" in a["serviceAccountId"] for a in acts)


def test_each_secret_is_readable_by_exactly_its_readers(render: RenderResult) -> None:
    grants: dict[str, set[str]] = {}
    rotators: set[str] = set()
    for r in of_type(render, "gcp:secretmanager/secretIamMember:SecretIamMember"):
        props = inputs(r)
        if props["role"] == SECRET_VERSION_MANAGER:  # the members rotate the join token (cfcr/gcp/secrets.py)
            assert props["secretId"].endswith("-bootstrap-token"), props["secretId"]
            rotators.add(props["member"])
            continue
        assert props["role"] == SECRET_ACCESSOR and props["member"].startswith("serviceAccount:")
        grants.setdefault(props["secretId"], set()).add(props["member"].split(":", 1)[1].split("@")[0])
    secrets = [inputs(r) for r in of_type(render, "gcp:secretmanager/secret:Secret")]
    assert set(grants) == {s["secretId"] for s in secrets}
    spec = load_stack(render.stack)
    for s in secrets:
        assert s["replication"]["userManaged"]["replicas"] == [{"location": spec.region}]
    assert len(rotators) == spec.control_plane.count and all("-cp-" in m for m in rotators)
    member_keys = [sid for sid, who in grants.items() if who == {f"{spec.name}-cp-0"}]
    assert member_keys, "a member's own keys are readable by that member alone"


# --------------------------------------------------------------------------- what cloud-init and bash get

def _metadata_user_data(result: RenderResult) -> dict[str, bytes]:
    return {r.name: inputs(r)["metadata"]["user-data"].encode()
            for r in [*of_type(result, INSTANCE), *of_type(result, TEMPLATE)]}


@needs("cloud-init")
def test_every_user_data_passes_cloud_init_schema(render: RenderResult, tmp_path: Path) -> None:
    failures = [f for name, raw in _metadata_user_data(render).items() for f in cloud_init_failures(name, raw, tmp_path)]
    assert not failures, "\n".join(failures)


@needs("shellcheck")
def test_every_user_data_script_passes_shellcheck(render: RenderResult, tmp_path: Path) -> None:
    failures = [f for name, raw in _metadata_user_data(render).items() for f in shellcheck_failures(name, raw, tmp_path)]
    assert not failures, "\n".join(failures)


def test_the_public_address_is_an_ip_san_of_the_api_server_certificate(render: RenderResult) -> None:
    """The exported kubeconfig names the public load balancer's static IP: a client checks an IP
    against the certificate's IP SANs only (the harness found the address among the DNS names)."""
    spec = load_stack(render.stack)
    (request,) = [r for r in of_type(render, "tls:index/certRequest:CertRequest")
                  if r.name == f"{spec.name}-pki-apiserver-csr"]
    props = inputs(request)
    if spec.networking.api_public:
        address = render.exports["apiLoadBalancerAddress"]
        assert address in props["ipAddresses"] and address not in props["dnsNames"]
    assert f"api.{spec.name}.cfcr.internal" in props["dnsNames"]
