"""The azure-stable render (with 3 members instead of 5: :data:`MEMBERS`), run by the real programs on
this machine as its VMs would boot (tests/support/controlplane.py with the Azure cloud of
tests/support/harness_clouds.py): its control-plane VMs and one instance of pool ``general``'s scale set, each reading its own IMDS
answers (tags, resource id, ``vmId``, tokens of its user-assigned identity) and its secrets from
a Key Vault stand-in that holds the render's secret values and judges each call by the render's
role assignments on that secret; asserted through the real API server.

The load balancer's stand-in carries no member's own connections to its frontend (Azure's does
not): the members reach the API on themselves only through what the render does about it (the
user-data's ``bootcmd`` maps the API name to 127.0.0.1; the harness runs it as cloud-init does,
and its kubelet stand-in resolves through the node's /etc/hosts).
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from cfcr.azure.addon_profile import PROFILE
from cfcr.azure.node_hook import IMDS_API
from cfcr.config import read_stack_config
from cfcr.node.metadata_guard import GUARD_CHAIN, RULE_COMMENT
from cfcr.pki.specs import kubeadm_ca_cert_hash
from cfcr.render.mocks import unwrap
from tests.support.controlplane import ControlPlane, Node
from tests.support.tools import recipe_for, require_program
from tests.support.validators import load_cloud_config

pytestmark = [pytest.mark.slow, pytest.mark.boots_own_harness]

STACK = "azure-stable"
TOKEN_GROUP = "system:bootstrappers:kubeadm:default-node-token"
ETCD_TLS = ("--cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt "
            "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key")
IMDS = "http://169.254.169.254/metadata/instance/compute"


MEMBERS = 3
"""azure-stable has 5 members; on this 2-core machine 5 booted in 365 s (the module's budget is
6 minutes in all), so the module boots the stack with 3, its configuration otherwise as is."""


@pytest.fixture(scope="module")
def azure() -> Iterator[ControlPlane]:
    """azure-stable with :data:`MEMBERS` members and one instance of pool general, booted once for
    this module under the machine's harness lock (tests/conftest.py)."""
    from tests.conftest import booted_harness

    config = read_stack_config(STACK)
    config["cfcr:controlPlane"] = {**config["cfcr:controlPlane"], "count": MEMBERS}
    started = time.monotonic()
    for harness in booted_harness(STACK, config):
        assert isinstance(harness, ControlPlane)
        assert harness.render.spec.cloud == "azure" and len(harness.render.members) == MEMBERS
        yield harness
        print(f"\n{STACK}: the module's tests ran {time.monotonic() - started:.0f}s in all (boot included)",
              flush=True)


def kubectl_json(cp: ControlPlane, *args: str) -> Any:
    return json.loads(cp.kubectl(*args, "-o", "json").stdout)


def members(cp: ControlPlane) -> list[Node]:
    return [cp.member(m.index) for m in cp.render.members]


def workers(cp: ControlPlane) -> list[Node]:
    return [n for n in cp.nodes.values() if n.member is None]


def rows(cp: ControlPlane, token: str) -> list[dict[str, Any]]:
    return [dict(unwrap(r.inputs)) for r in cp.render.rows(token)]


def internal_name(cp: ControlPlane) -> str:
    (record,) = rows(cp, "azure-native:privatedns:PrivateRecordSet")
    return f"{record['relativeRecordSetName']}.{record['privateZoneName']}"


# --------------------------------------------------------------------------- the control plane

def test_every_member_runs_its_static_pods_at_the_channel_version(azure: ControlPlane) -> None:
    cp = azure
    version = f"v{cp.render.release.kubernetes.version}"
    built = f"v{recipe_for('kube-apiserver', cp.render.release.kubernetes.version).built_version}"
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        out = subprocess.run([str(cp.binaries[name]), "--version"], capture_output=True, text=True)
        assert out.stdout.strip() == f"Kubernetes {built}", out.stdout
    for node in members(cp):
        manifests = {p.stem: yaml.safe_load(p.read_text())
                     for p in node.root.file("/etc/kubernetes/manifests").glob("*.yaml")}
        assert set(manifests) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            # the stack mirrors registry.k8s.io in containerd; the manifests keep the upstream name
            assert manifests[name]["spec"]["containers"][0]["image"] == f"registry.k8s.io/{name}:{version}"
        assert manifests["etcd"]["spec"]["containers"][0]["image"] == f"registry.k8s.io/etcd:{cp.render.release.etcd.version}"
        status = node.kubelet_status()
        assert status["pods"] and all(p["running"] for p in status["pods"].values()), (node.role, status["pods"])
    pods = kubectl_json(cp, "get", "pods", "-n", "kube-system")["items"]
    for node in members(cp):
        name = node.kubelet_status()["node"]
        mine = {p["metadata"]["name"].removesuffix(f"-{name}") for p in pods if p["spec"].get("nodeName") == name}
        assert {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} <= mine, (name, mine)


def test_etcd_has_every_rendered_member_and_all_are_healthy(azure: ControlPlane) -> None:
    cp = azure
    first = members(cp)[0]
    out = first.run(f"etcdctl --endpoints=https://127.0.0.1:2379 {ETCD_TLS} member list -w json")
    listed = {m["name"]: m["peerURLs"] for m in json.loads(out.stdout)["members"]}
    assert listed == {m.name: [f"https://{m.address}:2380"] for m in cp.render.members}
    health = first.run("etcdctl --endpoints=" + ",".join(f"https://{m.address}:2379" for m in cp.render.members)
                       + f" {ETCD_TLS} endpoint health -w json")
    found = json.loads(health.stdout)
    assert len(found) == len(cp.render.members) and all(e["health"] for e in found), health.stdout


def test_every_member_is_ready_and_answers_readyz_as_the_load_balancers_probe_it(azure: ControlPlane) -> None:
    require_program("curl")
    cp = azure
    assert cp.admin is not None
    probes = {lb["loadBalancerName"]: lb["probes"] for lb in rows(cp, "azure-native:network:LoadBalancer")}
    assert set(probes) == {f"{cp.render.name}-api-internal", f"{cp.render.name}-api-public"}
    for probe in probes.values():
        (readyz,) = probe
        assert (readyz["protocol"], readyz["requestPath"], int(readyz["port"])) == ("Https", "/readyz", 6443)
    for member in cp.render.members:
        # no credentials, the certificate unchecked: as Azure's health probes ask
        out = subprocess.run(cp.admin.command("curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}",
                                              f"https://{member.address}:6443/readyz"),
                             capture_output=True, text=True, timeout=30)
        assert out.stdout == "200", (member.name, out.stdout, out.stderr)
    status = json.loads((cp.workdir / "lb-status.json").read_text())
    assert status == {f"{m.address}:6443": True for m in cp.render.members}, status
    nodes = {n["metadata"]["name"]: n for n in kubectl_json(cp, "get", "nodes")["items"]}
    for member in cp.render.members:
        conditions = {c["type"]: c["status"] for c in nodes[member.name]["status"]["conditions"]}
        assert conditions.get("Ready") == "True", (member.name, conditions)


def test_the_members_reach_the_api_on_themselves_as_the_render_says(azure: ControlPlane) -> None:
    """Azure's load balancer does not carry a backend's own packets to its frontend; the render
    maps the API name to 127.0.0.1 on members (bootcmd) and nowhere else."""
    cp = azure
    name = internal_name(cp)
    internal = cp.lb_addresses["internal"]
    for role in cp.render.roles:
        boot = load_cloud_config(cp.render.user_data(role)).get("bootcmd", [])
        if role.startswith("control-plane-"):
            assert any(f"127.0.0.1 {name}" in " ".join(entry) for entry in boot), (role, boot)
        else:
            assert not boot, (role, boot)
    for node in members(cp):
        assert f"127.0.0.1 {name}" in node.root.read("/etc/hosts").splitlines()
        assert node.run(f"getent ahostsv4 {name} | awk '{{print $1}}' | sort -u").stdout.split() == ["127.0.0.1"]
        # the member's own admin.conf (join-credentials.sh, member.sh use it) names the API name and
        # reaches its own API server by it
        admin = yaml.safe_load(node.root.read("/etc/kubernetes/admin.conf"))
        assert admin["clusters"][0]["cluster"]["server"] == f"https://{name}:6443"
        assert node.run("kubectl --kubeconfig /etc/kubernetes/admin.conf get --raw /readyz").stdout == "ok"
        # the load balancer's frontend does not answer a member (no hairpin)
        hairpin = node.run(f"curl -sk --max-time 3 -o /dev/null -w '%{{http_code}}' https://{internal}:6443/readyz",
                           check=False)
        assert hairpin.returncode != 0 and hairpin.stdout in ("", "000"), (node.role, hairpin.stdout)
        # and its kubelet registered (kubeadm points an init node's kubelet at its own API server's
        # address; the stand-in resolves a name through the node's /etc/hosts, as a kubelet does)
        status = node.kubelet_status()
        assert status["registered"], (node.role, status)
        kubelet_conf = yaml.safe_load(node.root.read("/etc/kubernetes/kubelet.conf"))
        assert kubelet_conf["clusters"][0]["cluster"]["server"] in (f"https://{node.host.address}:6443",
                                                                     f"https://{name}:6443")
    worker = workers(cp)[0]
    assert worker.run(f"getent ahostsv4 {name} | awk '{{print $1}}' | sort -u").stdout.split() == [internal]
    through_lb = worker.run(f"curl -sk --max-time 10 -o /dev/null -w '%{{http_code}}' https://{name}:6443/readyz")
    assert through_lb.stdout == "200"


# --------------------------------------------------------------------------- the nodes as Azure gives them

def test_nodes_are_named_as_their_computer_names_with_azure_provider_ids(azure: ControlPlane) -> None:
    cp = azure
    exports = cp.render.result.exports
    group = f"/subscriptions/{exports['subscriptionId']}/resourceGroups/{exports['resourceGroup']}"
    vms = {str(r.outputs["vmId"]): (str(r.id), unwrap(r.inputs)) for r in cp.render.rows("azure-native:compute:VirtualMachine")}
    nodes = {n["metadata"]["name"]: n for n in kubectl_json(cp, "get", "nodes")["items"]}
    assert set(nodes) == {n.hostname for n in cp.nodes.values()}, sorted(nodes)
    for node in cp.nodes.values():
        if node.member is not None:
            resource_id, vm = vms[node.instance_id]
            assert node.hostname == vm["osProfile"]["computerName"] == exports["controlPlaneMembers"][node.member.index]["nodeName"]
            assert [node.zone] == vm["zones"]
            provider = f"azure://{resource_id}"
            # the member's rollout mark names its VM by provider ID and vmId (the machine's own id)
            mark = kubectl_json(cp, "get", "configmap", f"cfcr-member-{node.member.name}", "-n", "kube-system")["data"]
            assert mark == {"providerID": provider, "node": node.hostname, "machine": node.instance_id}
            assert node.instance_id == exports["controlPlaneInstanceIds"][node.member.index]
        else:
            scale_set = exports["nodePoolScaleSets"]["general"]
            assert node.hostname.startswith(scale_set) and len(node.hostname) == len(scale_set) + 6
            provider = (f"azure://{group}/providers/Microsoft.Compute/virtualMachineScaleSets/{scale_set}/"
                        f"virtualMachines/{int(node.hostname[-6:], 36)}")
        assert nodes[node.hostname]["spec"]["providerID"] == provider == cp.provider_id(node)
        # from IMDS's answers, by the node hook's own identity.sh
        assert node.root.read("/var/lib/cfcr/provider-id").strip() == provider


def _approver_values(cp: ControlPlane) -> dict[str, Any]:
    charts = [yaml.safe_load(p.read_text()) for p in (cp.render.out_dir / "manifests" / "helm").glob("*.yaml")]
    (found,) = [c for c in charts if c["helmChart"]["chart"] == "kubelet-csr-approver"]
    return dict(found["helmChart"]["values"])


def test_every_node_serving_csr_passes_the_rendered_approver(azure: ControlPlane) -> None:
    from tests.support.csr_approver import decide, serving_request

    cp = azure
    values = _approver_values(cp)
    assert values["providerRegex"] == PROFILE.node_name_pattern, "the Azure node-name pattern is rendered"
    problems = []
    for node in cp.nodes.values():
        status = node.kubelet_status()
        assert status.get("registered"), node.role
        vm = cp.vm(node)
        username = f"system:node:{status['node']}"
        for when, addresses in (("at registration", status["addresses"]),
                                ("after the CCM", [{"type": t, "address": a} for t, a in vm.ccm_addresses])):
            approved, reason = decide(values, serving_request(username, addresses), vm.resolve)
            if not approved:
                problems.append(f"{node.role} ({status['node']}) {when}: {reason}")
    assert not problems, "\n".join(problems)
    csrs = [c for c in kubectl_json(cp, "get", "csr")["items"] if c["spec"]["signerName"] == "kubernetes.io/kubelet-serving"]
    assert {c["spec"]["username"].removeprefix("system:node:") for c in csrs} >= {n.hostname for n in cp.nodes.values()}
    vm = cp.vm(workers(cp)[0])
    forged = serving_request(f"system:node:{vm.hostname}", [{"type": "Hostname", "address": "kubernetes.default.svc"},
                                                            {"type": "InternalIP", "address": vm.address}])
    assert not decide(values, forged, vm.resolve)[0]
    outside = serving_request(f"system:node:{vm.hostname}", [{"type": "Hostname", "address": vm.hostname},
                                                             {"type": "InternalIP", "address": "192.0.2.7"}])
    assert not decide(values, outside, vm.resolve)[0]


def test_the_worker_joined_through_the_internal_api_name_with_discovery_pinned_to_the_ca(azure: ControlPlane) -> None:
    cp = azure
    worker = workers(cp)[0]
    name = internal_name(cp)
    (record,) = rows(cp, "azure-native:privatedns:PrivateRecordSet")
    assert record["aRecords"] == [{"ipv4Address": cp.lb_addresses["internal"]}]
    assert cp.lb_addresses["internal"] == cp.render.result.exports["internalApiLoadBalancerAddress"]
    config = yaml.safe_load(worker.root.read("/etc/cfcr/kubeadm.yaml.tmpl"))
    bootstrap = config["discovery"]["bootstrapToken"]
    assert bootstrap["apiServerEndpoint"] == f"{name}:6443"
    ca = worker.root.read("/etc/kubernetes/pki/ca.crt")
    assert bootstrap["caCertHashes"] == [kubeadm_ca_cert_hash(ca)], "the pin rendered into user-data is the CA's"
    assert "Cluster info signature and contents are valid" in worker.join_output or \
        "[discovery] Successfully established connection with API Server" in worker.join_output, worker.join_output[-2000:]
    kubelet_conf = yaml.safe_load(worker.root.read("/etc/kubernetes/kubelet.conf"))
    assert kubelet_conf["clusters"][0]["cluster"]["server"] == f"https://{name}:6443"
    status = worker.kubelet_status()
    assert status["clientBootstrapped"] and status["registered"], status
    node = kubectl_json(cp, "get", "node", status["node"])
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
    csr = kubectl_json(cp, "get", "csr", status["clientCsr"])
    token_id = csr["spec"]["username"].removeprefix("system:bootstrap:")
    stored = cp.render.secret_values[f"{cp.render.name}-bootstrap-token"]
    assert token_id == stored.split(".")[0], "the worker joined with the token from Key Vault"
    assert TOKEN_GROUP in csr["spec"]["groups"]
    assert any(c["type"] == "Approved" for c in csr["status"]["conditions"])
    assert not worker.root.exists("/etc/kubernetes/kubeadm.yaml")


# --------------------------------------------------------------------------- Key Vault and IMDS

def _principals(cp: ControlPlane) -> dict[str, str]:
    """Role slug -> principal id of its user-assigned identity (the render's)."""
    return {unwrap(r.inputs)["tags"]["cfcr-role-slug"]: str(r.outputs["principalId"])
            for r in cp.render.rows("azure-native:managedidentity:UserAssignedIdentity")}


def test_each_role_read_exactly_its_secrets_with_its_own_identity(azure: ControlPlane) -> None:
    cp = azure
    principals = _principals(cp)
    readers: dict[str, set[str]] = {}
    for secret, roles in cp.render.result.exports["secretReaders"].items():
        for role in roles:
            readers.setdefault(role, set()).add(secret)
    state = cp.cloud_state()
    assert set(state["instances"]) == {n.host.address for n in cp.nodes.values()}
    reads = [r for r in state["log"] if r["method"] == "GET"]
    for node in cp.nodes.values():
        mine = [r for r in reads if r["client"] == node.host.address]
        assert mine, f"{node.role} read its secrets from the stand-in"
        assert {r["principal"] for r in mine} == {principals[node.role]}, f"{node.role} used another identity"
        refused = [r for r in mine if r["status"] != 200]
        assert not refused, f"{node.role}'s boot asked for secrets outside its grants: {refused}"
        assert {r["secret"] for r in mine} == readers[node.role], (node.role, sorted({r["secret"] for r in mine} ^ readers[node.role]))
    # the stand-in's grants are the render's role assignments, and secretReaders says the same
    for secret, roles in cp.render.result.exports["secretReaders"].items():
        assert set(state["grants"][secret]) == {principals[r] for r in roles}, secret


def _get(node: Node, secret: str) -> subprocess.CompletedProcess[str]:
    # no wait for a role assignment to propagate: the stand-in grants at once
    return node.run(f"export CFCR_AZURE_RBAC_WAIT=0; . /etc/cfcr/secrets.sh && cfcr_azure_secret_get {secret} >/dev/null",
                    check=False)


def test_key_vault_refuses_a_read_outside_the_roles_grants(azure: ControlPlane) -> None:
    cp = azure
    name = cp.render.name
    worker, member0, member1 = workers(cp)[0], members(cp)[0], members(cp)[1]
    member0_peer_key = f"{name}-etcd-members-{name}-cp-0-peer-key"
    attempts = [(worker, f"{name}-ca-key"), (worker, f"{name}-etcd-ca-key"), (worker, member0_peer_key),
                (member1, member0_peer_key)]
    for node, secret in attempts:
        out = _get(node, secret)
        assert out.returncode != 0 and "ForbiddenByRbac" in out.stderr, (node.role, secret, out.stderr)
    assert _get(member0, member0_peer_key).returncode == 0
    assert _get(worker, f"{name}-ca-crt").returncode == 0
    # a worker may read the join token but not write a version of it
    token = f"{name}-bootstrap-token"
    put = worker.run(f"export CFCR_AZURE_RBAC_WAIT=0; . /etc/cfcr/secrets.sh && echo forged.0123456789abcdef | "
                     f"cfcr_azure_secret_put {token}", check=False)
    assert put.returncode != 0 and "ForbiddenByRbac" in put.stderr, put.stderr
    log = cp.cloud_state()["log"]
    for node, secret in attempts + [(worker, token)]:
        assert any(r["client"] == node.host.address and r["secret"] == secret and r["status"] == 403 for r in log)
    assert "forged.0123456789abcdef" not in cp.cloud_state()["secrets"][token]


def test_every_node_keeps_pods_from_imds_and_the_wireserver(azure: ControlPlane) -> None:
    cp = azure
    for node in cp.nodes.values():
        rules = node.run("iptables -w -t mangle -S FORWARD").stdout
        for address in ("169.254.169.254", "168.63.129.16"):
            assert f"-A FORWARD -d {address}/32 -m comment --comment \"{RULE_COMMENT}\" -j {GUARD_CHAIN}" in rules, (
                node.role, rules)
        chain = node.run(f"iptables -w -t mangle -S {GUARD_CHAIN}").stdout
        assert chain.rstrip().endswith("-j DROP"), (node.role, chain)
        # the node itself (OUTPUT, not FORWARD) still reaches IMDS: its vmId is its own
        out = node.run(f"curl -fsS -H Metadata:true '{IMDS}/vmId?api-version={IMDS_API}&format=text'")
        assert out.stdout == node.instance_id
        # and IMDS refuses a request without the header, as Azure's does
        bare = node.run(f"curl -sS -o /dev/null -w '%{{http_code}}' '{IMDS}/vmId?api-version={IMDS_API}&format=text'")
        assert bare.stdout == "400"


# --------------------------------------------------------------------------- join credentials

@contextlib.contextmanager
def join_credentials_timer(cp: ControlPlane, interval: float = 3.0) -> Iterator[None]:
    """cfcr-join-credentials.timer on member 0, every ``interval`` seconds while the block runs."""
    stop = threading.Event()
    first = members(cp)[0]

    def loop() -> None:
        while not stop.is_set():
            first.run("/usr/local/lib/cfcr/join-credentials.sh", check=False)
            stop.wait(interval)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=120)


def test_the_members_rotate_the_join_token_as_a_new_key_vault_version(azure: ControlPlane) -> None:
    cp = azure
    first = members(cp)[0]
    token_secret = f"{cp.render.name}-bootstrap-token"
    versions = cp.cloud_state()["secrets"][token_secret]
    assert versions == [cp.render.secret_values[token_secret]]
    old_id = versions[-1].split(".")[0]
    # the stored token is fine: a run stores nothing
    first.run("/usr/local/lib/cfcr/join-credentials.sh")
    assert cp.cloud_state()["secrets"][token_secret] == versions
    # it expired and was cleaned up: the next run stores a new one as the secret's new version
    cp.kubectl("delete", "secret", f"bootstrap-token-{old_id}", "-n", "kube-system")
    out = first.run("/usr/local/lib/cfcr/join-credentials.sh")
    assert "rotated the join token" in out.stdout + out.stderr, out.stderr
    state = cp.cloud_state()
    now = state["secrets"][token_secret]
    assert now[:-1] == versions and len(now) == 2, "Key Vault keeps the old version under the new one"
    new_id = now[-1].strip().split(".")[0]
    assert new_id != old_id
    kubectl_json(cp, "get", "secret", f"bootstrap-token-{new_id}", "-n", "kube-system")
    (put,) = [r for r in state["log"] if r["method"] == "PUT" and r["status"] == 200]
    assert (put["client"], put["principal"], put["secret"]) == (first.host.address, _principals(cp)[first.role],
                                                                token_secret)
    # a scale-set instance created now joins with it: member 0 approves its client certificate
    # as a join candidate (an instance of this cluster's worker scale set, by ARM, created
    # before its Node)
    with join_credentials_timer(cp):
        late = cp.join_worker(workers(cp)[0].role, 1)
    status = late.kubelet_status()
    assert status["registered"], status
    csr = kubectl_json(cp, "get", "csr", status["clientCsr"])
    assert csr["spec"]["username"] == f"system:bootstrap:{new_id}"
    approved = [c for c in csr["status"]["conditions"] if c["type"] == "Approved"]
    # by join-credentials.sh (kubectl), not kube-controller-manager: kubeadm's binding is gone
    assert [c["reason"] for c in approved] == ["KubectlApprove"], csr["status"]["conditions"]
    gone = cp.kubectl("get", "clusterrolebinding", "kubeadm:node-autoapprove-bootstrap", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    listed = {i["computer_name"]: i for s in cp.cloud_state()["scale_sets"] for i in s["instances"]}
    assert late.hostname in listed and listed[late.hostname]["time_created"]


# --------------------------------------------------------------------------- data at rest

def test_a_secret_is_encrypted_in_etcd(azure: ControlPlane) -> None:
    cp = azure
    cp.kubectl("create", "secret", "generic", "cfcr-at-rest", "-n", "default", "--from-literal=k=plaintext-marker")
    raw = members(cp)[0].run(
        "etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
        "--cert=/etc/kubernetes/pki/apiserver-etcd-client.crt --key=/etc/kubernetes/pki/apiserver-etcd-client.key "
        "get /registry/secrets/default/cfcr-at-rest --print-value-only | head -c 200 | od -An -c")
    text = raw.stdout.replace(" ", "").replace("\n", "")
    assert text.startswith("k8s:enc:secretbox:v1:key1:"), text[:80]
    assert "plaintext-marker" not in text
    secret = kubectl_json(cp, "get", "secret", "cfcr-at-rest", "-n", "default")
    assert base64.b64decode(secret["data"]["k"]) == b"plaintext-marker"
