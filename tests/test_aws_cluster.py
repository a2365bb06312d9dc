"""cfcr.aws.Cluster under the mock runtime: the AWS stacks' renders, checked for the
properties DESIGN.md and issue 3 promise (firewall, IMDSv2, encryption, AZ spread, spot,
secrets, user-data, IAM scoping, parallel boot, stable names)."""

from __future__ import annotations

import base64
import ipaddress
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from cfcr.aws.image import ubuntu_parameter
from cfcr.aws.node_pool import MIN_HEALTHY_PERCENTAGE
from cfcr.config import load_stack
from cfcr.config.topology import control_plane_members
from cfcr.render import RecordedResource, RenderResult, render_stack, unwrap
from cfcr.render.aws import ubuntu_ami
from tests.support.tools import needs
from tests.support.validators import cloud_init_failures, plain, shellcheck_failures

AWS_STACKS = ["aws-stable", "aws-edge"]
VMS = ("aws:ec2/instance:Instance", "aws:autoscaling/group:Group")
LT = "aws:ec2/launchTemplate:LaunchTemplate"


@pytest.fixture(scope="module", params=AWS_STACKS)
def render(request: pytest.FixtureRequest) -> RenderResult:
    return render_stack(request.param, None, show_secrets=True)


def of_type(result: RenderResult, token: str) -> list[RecordedResource]:
    return [r for r in result.resources if r.type == token]


def inputs(r: RecordedResource) -> dict[str, Any]:
    value = unwrap(r.inputs)
    assert isinstance(value, dict)
    return value


def by_id(result: RenderResult, token: str) -> dict[str, RecordedResource]:
    return {str(r.id): r for r in of_type(result, token)}


# --------------------------------------------------------------------------- shape

def test_the_cluster_component_parents_everything(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    cluster = [r for r in render.resources if r.type == "cfcr:aws:Cluster"]
    assert len(cluster) == 1 and cluster[0].name == spec.name
    assert render.resources[0].type == "cfcr:aws:Cluster"
    pools = of_type(render, "cfcr:aws:NodePool")
    assert sorted(p.name for p in pools) == sorted(f"{spec.name}-{p.name}" for p in spec.node_pools)
    for r in render.resources[1:]:
        assert r.parent is not None, r.name
    outputs = cluster[0].registered_outputs
    for key in ("adminKubeconfig", "apiServerUrl", "caBundle", "vpcId", "privateSubnetIds", "publicSubnetIds",
                "nodePoolAsgNames", "securityGroupIds"):
        assert key in outputs, key
    assert "adminKubeconfig" in cluster[0].secret_outputs


def test_stable_names(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    n = spec.name
    names = {(r.type, r.name) for r in render.resources}
    expected = {
        ("aws:ec2/vpc:Vpc", f"{n}-vpc"),
        ("aws:lb/loadBalancer:LoadBalancer", f"{n}-api"),
        ("aws:lb/targetGroup:TargetGroup", f"{n}-api"),
        ("aws:route53/zone:Zone", f"{n}-internal"),
        ("aws:kms/key:Key", f"{n}-secrets"),
        ("cfcr:bootstrap:ClusterBootstrap", n),
        *{("aws:ec2/instance:Instance", f"{n}-cp-{i}") for i in range(spec.control_plane.count)},
        *{("aws:ebs/volume:Volume", f"{n}-cp-{i}-etcd") for i in range(spec.control_plane.count)},
        *{("aws:iam/role:Role", f"{n}-cp-{i}") for i in range(spec.control_plane.count)},
        *{("aws:autoscaling/group:Group", f"{n}-{p.name}") for p in spec.node_pools},
        *{("aws:iam/role:Role", f"{n}-worker-{p.name}") for p in spec.node_pools},
    }
    assert expected <= names, expected - names
    assert all(r.name.startswith(n or "") for r in render.resources)


@pytest.mark.fresh_render
def test_renders_are_deterministic(render: RenderResult) -> None:
    again = render_stack(render.stack, None, show_secrets=True)
    assert [(r.type, r.name, r.id) for r in again.resources] == [(r.type, r.name, r.id) for r in render.resources]


# --------------------------------------------------------------------------- firewall

def _covers(rule: Mapping[str, Any], port: int) -> bool:
    if rule["ipProtocol"] in ("-1", "all"):
        return True
    lo, hi = rule.get("fromPort"), rule.get("toPort")
    return rule["ipProtocol"] in ("tcp", "6") and lo is not None and hi is not None and lo <= port <= hi


def test_nothing_is_open_to_the_world_but_the_api_to_allowed_cidrs(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    groups = {r.urn: r for r in of_type(render, "aws:ec2/securityGroup:SecurityGroup")}
    lb_group = next(r for r in groups.values() if r.name.endswith("-api-lb"))
    allowed = {str(ipaddress.ip_network(c, strict=False)) for c in spec.networking.api_allowed_cidrs}
    rules = of_type(render, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert rules
    for r in rules:
        rule = inputs(r)
        cidr = rule.get("cidrIpv4") or rule.get("cidrIpv6")
        if cidr is None:
            assert rule.get("referencedSecurityGroupId"), r.name
            continue
        assert ipaddress.ip_network(cidr).prefixlen > 0, f"{r.name} opens to the world"
        # a CIDR rule is only ever the API port on the load balancer's group
        assert (rule["fromPort"], rule["toPort"], rule["ipProtocol"]) == (6443, 6443, "tcp"), r.name
        assert rule["securityGroupId"] == lb_group.id, r.name
        vpc_cidrs = {inputs(v)["cidrBlock"] for v in of_type(render, "aws:ec2/vpc:Vpc")}
        assert cidr in allowed | (vpc_cidrs if not spec.networking.api_public else set()), r.name
    for r in rules:
        assert not _covers(inputs(r), 22), f"{r.name} opens SSH"


def test_etcd_and_kubelet_are_limited_to_the_control_plane(render: RenderResult) -> None:
    """etcd: the control plane only. The kubelet API: the control plane (the API server) and the
    workers (metrics-server runs there; tests/test_flows.py checks the flow), nothing else."""
    groups = {str(r.id): r.name for r in of_type(render, "aws:ec2/securityGroup:SecurityGroup")}
    rules = [inputs(r) for r in of_type(render, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")]
    for port, allowed in ((2379, ("-control-plane",)), (2380, ("-control-plane",)),
                          (10250, ("-control-plane", "-worker"))):
        sources = {groups.get(r.get("referencedSecurityGroupId", ""), "cidr") for r in rules if _covers(r, port)}
        assert sources and all(s.endswith(allowed) for s in sources), (port, sources)
    etcd_targets = {groups[r["securityGroupId"]] for r in rules if _covers(r, 2379)}
    assert all(t.endswith("-control-plane") for t in etcd_targets)


def test_cni_ports_only_between_nodes(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    groups = {str(r.id): r.name for r in of_type(render, "aws:ec2/securityGroup:SecurityGroup")}
    rules = [inputs(r) for r in of_type(render, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")]
    vxlan = 4789 if spec.cni == "calico" else 8472
    hits = [r for r in rules if r["ipProtocol"] == "udp" and r["fromPort"] <= vxlan <= r["toPort"]]
    assert len(hits) == 4  # control plane and workers, each from both
    for r in hits:
        assert groups[r["referencedSecurityGroupId"]].endswith(("-control-plane", "-worker"))


def test_host_network_controllers_need_no_inbound_port(render: RenderResult) -> None:
    """The EBS CSI controller (health 9808, metrics 3301 when enabled), cluster-autoscaler
    (health and metrics 8085) and aws-node-termination-handler (health 8080) run on the control
    plane's host network: their ports are probed by the local kubelet only, so no security
    group opens them to anyone."""
    rules = [inputs(r) for r in of_type(render, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")]
    for port in (9808, 3301, 8085, 8080):
        assert not [r for r in rules if _covers(r, port)], port


def test_every_node_registers_with_its_aws_provider_id(render: RenderResult) -> None:
    """Control-plane kubelets register as <cluster>-cp-<i>, not the private DNS name
    cloud-provider-aws would look up: every role's kubelet gets --provider-id, filled at boot
    from IMDSv2 as aws:///<zone>/<instance id>."""
    assert render.user_data
    for role, data in render.user_data.items():
        doc = yaml.safe_load(plain(data).decode())
        files = {f["path"]: f["content"] for f in doc["write_files"]}
        kubeadm = list(yaml.safe_load_all(files["/etc/cfcr/kubeadm.yaml.tmpl"]))
        extra = {a["name"]: a["value"] for a in kubeadm[0]["nodeRegistration"]["kubeletExtraArgs"]}
        assert extra["provider-id"] == "@PROVIDER_ID@", role
        identity = files["/etc/cfcr/identity.sh"]
        assert ":-http://169.254.169.254}" in identity and '"$base/api/token"' in identity and 'printf "aws:///%s/%s' in identity, role


def test_the_test_of_open_ports_can_fail() -> None:
    assert _covers({"ipProtocol": "-1"}, 22)
    assert _covers({"ipProtocol": "tcp", "fromPort": 0, "toPort": 65535}, 22)
    assert not _covers({"ipProtocol": "udp", "fromPort": 22, "toPort": 22}, 22)


# --------------------------------------------------------------------------- metadata, encryption

def test_imdsv2_required_with_one_hop_everywhere(render: RenderResult) -> None:
    templated = of_type(render, LT) + of_type(render, "aws:ec2/instance:Instance")
    assert len(templated) >= 4
    for r in templated:
        md = inputs(r)["metadataOptions"]
        assert md["httpTokens"] == "required", r.name
        assert md["httpPutResponseHopLimit"] == 1, r.name
    for r in of_type(render, "aws:autoscaling/group:Group"):
        assert "launchConfiguration" not in inputs(r)


def test_every_volume_is_encrypted(render: RenderResult) -> None:
    for r in of_type(render, LT):
        mappings = inputs(r)["blockDeviceMappings"]
        assert mappings and all(m["ebs"]["encrypted"] == "true" for m in mappings), r.name
    volumes = of_type(render, "aws:ebs/volume:Volume")
    assert volumes and all(inputs(v)["encrypted"] is True and inputs(v)["type"] == "gp3" for v in volumes)


def test_secrets_are_in_secrets_manager_under_the_cluster_key(render: RenderResult) -> None:
    keys = of_type(render, "aws:kms/key:Key")
    assert all(inputs(k)["enableKeyRotation"] is True for k in keys)
    # the secrets' own key; the etcd snapshots have theirs, which outlives the cluster (docs/backups.md)
    key = [k for k in keys if not k.name.endswith("-etcd-backups")]
    assert len(key) == 1, [k.name for k in keys]
    secrets = of_type(render, "aws:secretsmanager/secret:Secret")
    assert secrets
    for s in secrets:
        assert inputs(s)["kmsKeyId"] == key[0].outputs["arn"]
    for v in of_type(render, "aws:secretsmanager/secretVersion:SecretVersion"):
        assert "secretString" in v.secret_inputs, v.name


# --------------------------------------------------------------------------- placement

def test_members_and_subnets_spread_over_zones(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    subnets = by_id(render, "aws:ec2/subnet:Subnet")
    private = [s for s in subnets.values() if "-private-" in s.name]
    public = [s for s in subnets.values() if "-public-" in s.name]
    assert len({inputs(s)["availabilityZone"] for s in private}) == 3
    assert len({inputs(s)["availabilityZone"] for s in public}) == 3
    for s in private:
        assert inputs(s)["tags"]["kubernetes.io/role/internal-elb"] == "1"
    for s in public:
        assert inputs(s)["tags"]["kubernetes.io/role/elb"] == "1"
    volumes = {r.name: inputs(r) for r in of_type(render, "aws:ebs/volume:Volume")}
    members = control_plane_members(spec)
    zones_used = set()
    for i, instance in enumerate(sorted(of_type(render, "aws:ec2/instance:Instance"), key=lambda r: r.name)):
        args = inputs(instance)
        zone = inputs(subnets[args["subnetId"]])["availabilityZone"]
        assert args["privateIp"] == members[i].address
        assert volumes[f"{instance.name}-etcd"]["availabilityZone"] == zone, "etcd volume in the member's zone"
        zones_used.add(zone)
    assert len(zones_used) == min(3, spec.control_plane.count)


def test_etcd_volume_is_attached_and_named_in_user_data(render: RenderResult) -> None:
    volumes = {r.name: r for r in of_type(render, "aws:ebs/volume:Volume")}
    attachments = [inputs(a) for a in of_type(render, "aws:ec2/volumeAttachment:VolumeAttachment")]
    assert len(attachments) == len(volumes)
    for i, name in enumerate(sorted(volumes)):
        volume = volumes[name]
        assert str(volume.id).startswith("vol-")
        assert any(a["volumeId"] == volume.id and a["deviceName"] == "/dev/sdf" for a in attachments)
        text = plain(render.user_data[f"control-plane-{i}"]).decode()
        assert f"nvme-Amazon_Elastic_Block_Store_{str(volume.id).replace('-', '')}" in text


def api_nlb(result: RenderResult) -> RecordedResource:
    """The API's (public, when the API is public) network load balancer, ``<cluster>-api``."""
    spec = load_stack(result.stack)
    return next(r for r in of_type(result, "aws:lb/loadBalancer:LoadBalancer") if r.name == f"{spec.name}-api")


def test_api_load_balancer(render: RenderResult) -> None:
    """One NLB, internal or internet-facing; a public API adds an internal NLB for the nodes
    (tests/test_flows.py checks the private name aliases it), each with its own target group."""
    spec = load_stack(render.stack)
    nlb = inputs(api_nlb(render))
    assert nlb["loadBalancerType"] == "network"
    assert nlb["internal"] is (not spec.networking.api_public)
    assert nlb["enableCrossZoneLoadBalancing"] is True
    balancers = 2 if spec.networking.api_public else 1
    assert len(of_type(render, "aws:lb/loadBalancer:LoadBalancer")) == balancers
    for group in of_type(render, "aws:lb/targetGroup:TargetGroup"):
        tg = inputs(group)
        assert (tg["port"], tg["protocol"]) == (6443, "TCP")
        assert tg["healthCheck"]["protocol"] == "HTTPS" and tg["healthCheck"]["path"] == "/readyz"
    assert len(of_type(render, "aws:lb/targetGroup:TargetGroup")) == balancers
    attachments = of_type(render, "aws:lb/targetGroupAttachment:TargetGroupAttachment")
    assert len(attachments) == balancers * spec.control_plane.count
    zone = inputs(of_type(render, "aws:route53/zone:Zone")[0])
    assert zone["vpcs"] and zone["name"] == f"{spec.name}.cfcr.internal"
    record = inputs(of_type(render, "aws:route53/record:Record")[0])
    assert record["name"] == f"api.{spec.name}.cfcr.internal" and record["aliases"]


def test_serving_certificate_names_the_load_balancer(render: RenderResult) -> None:
    from cryptography import x509

    dns = api_nlb(render).outputs["dnsName"]
    cert = next(r for r in render.resources if r.type == "tls:index/locallySignedCert:LocallySignedCert"
                and r.name.endswith("-apiserver"))
    pem = unwrap(cert.outputs["certPem"])
    sans = x509.load_pem_x509_certificate(pem.encode()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    spec = load_stack(render.stack)
    assert dns in sans and f"api.{spec.name}.cfcr.internal" in sans


def test_admin_kubeconfig_uses_the_public_name_when_public(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    kubeconfig = yaml.safe_load(render.exports["adminKubeconfig"])
    server = kubeconfig["clusters"][0]["cluster"]["server"]
    if spec.networking.api_public:
        dns = api_nlb(render).outputs["dnsName"]
        assert server == f"https://{spec.networking.api_dns_name or dns}:6443"
    else:
        assert server == f"https://api.{spec.name}.cfcr.internal:6443"


# --------------------------------------------------------------------------- pools

def test_pools_heal_roll_drain_and_are_discoverable(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    groups = {r.name: inputs(r) for r in of_type(render, "aws:autoscaling/group:Group")}
    for pool in spec.node_pools:
        g = groups[f"{spec.name}-{pool.name}"]
        assert (g["minSize"], g["maxSize"]) == (pool.min_size, pool.max_size)
        assert g["healthCheckType"] == "EC2" and g["healthCheckGracePeriod"] > 0
        assert g["instanceRefresh"]["strategy"] == "Rolling"
        assert g["instanceRefresh"]["preferences"]["minHealthyPercentage"] == MIN_HEALTHY_PERCENTAGE
        hooks = g["initialLifecycleHooks"]
        assert [h["lifecycleTransition"] for h in hooks] == ["autoscaling:EC2_INSTANCE_TERMINATING"]
        tags = {t["key"]: t["value"] for t in g["tags"]}
        assert tags["k8s.io/cluster-autoscaler/enabled"] == "true"
        assert tags[f"k8s.io/cluster-autoscaler/{spec.name}"] == "owned"
        assert tags[f"kubernetes.io/cluster/{spec.name}"] == "owned"
        for key, value in pool.labels.items():
            assert tags[f"k8s.io/cluster-autoscaler/node-template/label/{key}"] == value
        for taint in pool.taints:
            assert tags[f"k8s.io/cluster-autoscaler/node-template/taint/{taint.key}"] == f"{taint.value}:{taint.effect}"
        assert len(g["vpcZoneIdentifiers"]) == 3


def test_spot_pool_uses_a_mixed_instances_policy() -> None:
    result = render_stack("aws-edge", None)
    spec = load_stack("aws-edge")
    groups = {r.name: inputs(r) for r in of_type(result, "aws:autoscaling/group:Group")}
    templates = {r.urn: inputs(r) for r in of_type(result, LT)}
    by_lt_id = {str(r.id): inputs(r) for r in of_type(result, LT)}
    assert templates
    for pool in spec.node_pools:
        g = groups[f"{spec.name}-{pool.name}"]
        if pool.spot:
            assert "launchTemplate" not in g
            mixed = g["mixedInstancesPolicy"]
            dist = mixed["instancesDistribution"]
            assert dist["onDemandBaseCapacity"] == 0 and dist["onDemandPercentageAboveBaseCapacity"] == 0
            assert g["capacityRebalance"] is True
            lt_id = mixed["launchTemplate"]["launchTemplateSpecification"]["launchTemplateId"]
        else:
            assert "mixedInstancesPolicy" not in g
            lt_id = g["launchTemplate"]["id"]
        lt = by_lt_id[lt_id]
        assert lt["imageId"] == ubuntu_ami(ubuntu_parameter("24.04", pool.architecture))
    assert any(p.spot for p in spec.node_pools)


# --------------------------------------------------------------------------- user-data and secrets

def _launch_user_data(result: RenderResult) -> dict[str, bytes]:
    return {r.name: base64.b64decode(inputs(r)["userData"]) for r in of_type(result, LT)}


def _secret_values(result: RenderResult) -> list[str]:
    """Lines of every key material and credential in the store (not the control plane's scripts,
    which travel there for room, not secrecy: cfcr/node/delivered.py)."""
    scripts = {r.outputs.get("arn") for r in result.resources
               if r.type == "aws:secretsmanager/secret:Secret" and "-script-" in str(unwrap(r.inputs)["name"])}
    values = []
    for r in result.resources:
        if r.type == "aws:secretsmanager/secretVersion:SecretVersion" and unwrap(r.inputs)["secretId"] not in scripts:
            value = unwrap(r.inputs["secretString"])
            for line in str(value).splitlines():
                if line and "CERTIFICATE" not in line and "PUBLIC KEY" not in line and len(line) > 12:
                    values.append(line)
    return values


def test_launch_templates_carry_exactly_the_rendered_user_data(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    data = _launch_user_data(render)
    for i in range(spec.control_plane.count):
        assert data[f"{spec.name}-cp-{i}"] == render.user_data[f"control-plane-{i}"]
    for pool in spec.node_pools:
        assert data[f"{spec.name}-{pool.name}"] == render.user_data[f"worker-{pool.name}"]
    for raw in data.values():
        assert len(raw) <= 16384


def test_no_key_material_in_user_data_or_launch_templates_even_shown(render: RenderResult, tmp_path: Path) -> None:
    from cfcr.render.writer import resource_entries

    secrets = _secret_values(render)
    assert len(secrets) > 20
    kubeconfig = yaml.safe_load(render.exports["adminKubeconfig"])
    secrets.append(kubeconfig["users"][0]["user"]["client-key-data"])
    shown = resource_entries(render.resources, show_secrets=True)
    for entry in shown:
        if entry["type"] not in (LT, "aws:ec2/instance:Instance"):
            continue
        text = json.dumps(entry["inputs"])
        blobs = [text]
        if "userData" in entry["inputs"]:
            blobs.append(plain(base64.b64decode(entry["inputs"]["userData"])).decode())
        for blob in blobs:
            assert "PRIVATE KEY" not in blob, entry["name"]
            for value in secrets:
                assert value not in blob, f"{entry['name']} carries secret material"


@needs("cloud-init")
def test_every_user_data_passes_cloud_init_schema(render: RenderResult, tmp_path: Path) -> None:
    failures = [f for name, raw in _launch_user_data(render).items() for f in cloud_init_failures(name, raw, tmp_path)]
    assert not failures, "\n".join(failures)


@needs("shellcheck")
def test_every_user_data_script_passes_shellcheck(render: RenderResult, tmp_path: Path) -> None:
    failures = [f for name, raw in _launch_user_data(render).items() for f in shellcheck_failures(name, raw, tmp_path)]
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------- IAM

def _policies(result: RenderResult) -> dict[str, dict[str, Any]]:
    """Role name -> inline policy name -> document."""
    roles = {str(r.id): r.name for r in of_type(result, "aws:iam/role:Role")}
    out: dict[str, dict[str, Any]] = {}
    for p in of_type(result, "aws:iam/rolePolicy:RolePolicy"):
        args = inputs(p)
        out.setdefault(roles[args["role"]], {})[args["name"]] = json.loads(args["policy"])
    return out


def _readable(result: RenderResult, role: str) -> set[str]:
    arns = {s.outputs["arn"]: inputs(s)["name"] for s in of_type(result, "aws:secretsmanager/secret:Secret")}
    doc = _policies(result)[role]["secrets"]
    statement = next(s for s in doc["Statement"] if s["Sid"] == "ReadOwnSecrets")
    assert "*" not in json.dumps(statement["Resource"])
    return {arns[a] for a in statement["Resource"]}


def test_secret_read_is_scoped_per_role(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    n = spec.name
    members = [m.name for m in control_plane_members(spec)]
    for pool in spec.node_pools:
        readable = _readable(render, f"{n}-worker-{pool.name}")
        assert readable == {f"{n}-ca-crt", f"{n}-bootstrap-token"}, readable
    for i, member in enumerate(members):
        readable = _readable(render, f"{n}-cp-{i}")
        assert f"{n}-ca-key" in readable
        own = {s for s in readable if "etcd-members" in s}
        assert own and all(member in s for s in own), own
        for other in members:
            if other != member:
                assert not any(other in s for s in readable), f"{member} reads {other}'s secrets"


def test_cluster_wide_permissions_are_scoped_by_cluster_tags(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    policies = _policies(render)
    cp = policies[f"{spec.name}-cp-0"]
    assert {"cloud-controller-manager", "ebs-csi-controller", "cluster-autoscaler", "secrets"} <= set(cp)
    for doc_name in ("ebs-csi-controller", "cluster-autoscaler"):
        for statement in cp[doc_name]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            mutating = [a for a in actions if not a.split(":")[1].startswith(("Describe", "Get"))]
            if mutating and statement["Resource"] == "*":
                assert "Condition" in statement, (doc_name, statement["Sid"])
                assert spec.name in json.dumps(statement["Condition"]), (doc_name, statement["Sid"])
    for pool in spec.node_pools:
        assert set(policies[f"{spec.name}-worker-{pool.name}"]) == {"secrets"}


# --------------------------------------------------------------------------- boot and rollout order

def is_member_gate(r: RecordedResource) -> bool:
    """A control-plane member's rollout gate (cfcr/bootstrap/rollout.py)."""
    return r.type == "pulumi-python:dynamic:Resource" and r.name.endswith("-ready") and "-cp-" in r.name


def vm_dependency_violations(resources: Iterable[RecordedResource], vm_types: tuple[str, ...] = VMS) -> list[str]:
    """VMs that wait (transitively, through components as Pulumi expands them, and parents)
    on another VM other than through a member's rollout gate: a gate does not wait while the
    cluster is new (its members boot together), so only a gate may stand between two VMs."""
    records = [r for r in resources if not is_member_gate(r)]
    by_urn = {r.urn: r for r in records}
    children: dict[str, list[str]] = {}
    for r in records:
        if r.parent:
            children.setdefault(r.parent, []).append(r.urn)

    def descendants(urn: str) -> list[str]:
        out, stack = [], [urn]
        while stack:
            for c in children.get(stack.pop(), []):
                out.append(c)
                stack.append(c)
        return out

    def edges(urn: str) -> set[str]:
        r = by_urn[urn]
        found: set[str] = set()
        for dep in r.dependencies:
            found.add(dep)
            if dep in by_urn and not by_urn[dep].custom:
                found.update(descendants(dep))
        if r.parent:
            found.add(r.parent)
        return found

    problems = []
    for vm in (r for r in records if r.type in vm_types):
        seen: set[str] = set()
        todo = list(edges(vm.urn))
        while todo:
            urn = todo.pop()
            if urn in seen or urn not in by_urn:
                continue
            seen.add(urn)
            if by_urn[urn].type in vm_types:
                problems.append(f"{vm.name} waits on {by_urn[urn].name}")
            todo.extend(edges(urn))
    return problems


def test_no_vm_waits_on_another_vm(render: RenderResult) -> None:
    vms = [r for r in render.resources if r.type in VMS]
    assert len(vms) >= 4
    assert vm_dependency_violations(render.resources) == []


def test_the_parallel_boot_check_can_fail(render: RenderResult) -> None:
    import dataclasses

    records = list(render.resources)
    instances = [r for r in records if r.type == "aws:ec2/instance:Instance"]
    # make a node pool's component depend on member 0's attachment: a VM behind a VM
    attachment = next(r for r in records if r.type == "aws:ec2/volumeAttachment:VolumeAttachment")
    group = next(r for r in records if r.type == "aws:autoscaling/group:Group")
    bad = [dataclasses.replace(r, dependencies=[*r.dependencies, attachment.urn]) if r is group else r for r in records]
    assert any(instances[0].name in p for p in vm_dependency_violations(bad))


def test_members_roll_one_after_another_and_the_pools_after_the_last(render: RenderResult) -> None:
    """Member i+1's instance waits on member i's gate, which waits on member i's instance (its
    provider ID), volume and load-balancer registrations; every pool waits on the last gate."""
    by_urn = {r.urn: r for r in render.resources}
    instances = sorted(of_type(render, "aws:ec2/instance:Instance"), key=lambda r: r.name)
    gates = sorted((r for r in render.resources if is_member_gate(r)), key=lambda r: r.name)
    assert [g.name.removesuffix("-ready") for g in gates] == [i.name for i in instances]
    for index, (instance, gate) in enumerate(zip(instances, gates)):
        waits_for = {by_urn[d].type for d in gate.dependencies if d in by_urn}
        assert instance.urn in gate.dependencies
        assert {"aws:ec2/volumeAttachment:VolumeAttachment", "aws:lb/targetGroupAttachment:TargetGroupAttachment"} <= waits_for
        before = {d for d in instance.dependencies if d in by_urn and is_member_gate(by_urn[d])}
        assert before == ({gates[index - 1].urn} if index else set()), instance.name
    for group in of_type(render, "aws:autoscaling/group:Group"):
        chain = {group.urn}
        todo = list(group.dependencies) + [group.parent or ""]
        while todo:
            urn = todo.pop()
            if urn in chain or urn not in by_urn:
                continue
            chain.add(urn)
            todo.extend(by_urn[urn].dependencies)
        assert gates[-1].urn in chain, f"{group.name} must roll after the last control-plane member"
        assert all(g.urn in chain for g in gates)


def test_every_member_address_is_reserved_in_its_subnet(render: RenderResult) -> None:
    reservations = {str(r.inputs["cidrBlock"]): r for r in of_type(render, "aws:ec2/subnetCidrReservation:SubnetCidrReservation")}
    for instance in of_type(render, "aws:ec2/instance:Instance"):
        reserved = reservations[f"{instance.inputs['privateIp']}/32"]
        assert reserved.inputs["reservationType"] == "explicit"
        assert reserved.inputs["subnetId"] == instance.inputs["subnetId"]
        assert reserved.urn in instance.dependencies


def test_the_readiness_gate_starts_its_clock_when_the_control_plane_exists(render: RenderResult) -> None:
    gates = [r for r in render.resources if r.type == "pulumi-python:dynamic:Resource" and r.name.endswith("-readiness-gate")]
    assert len(gates) == 1
    instances = of_type(render, "aws:ec2/instance:Instance")
    members = {r.urn for r in instances}
    assert members and members <= set(gates[0].dependencies), (
        "the gate must wait for every control-plane instance, or its timeout runs while they are created")
    last = sorted((r for r in render.resources if is_member_gate(r)), key=lambda r: r.name)[-1]
    assert last.urn in gates[0].dependencies, "and for the last member gate: an update's replaced members are back"
    assert unwrap(gates[0].inputs)["machines"] == [i.id for i in instances], (
        "it keeps the instances' ids: replacing a member makes it wait again before the addons change")
