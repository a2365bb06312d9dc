"""The gcp-stable render, run by the real programs on this machine as its VMs would boot
(tests/support/controlplane.py with the GCP cloud of tests/support/harness_clouds.py): its 3
control-plane instances and one VM of pool ``general``, each reading its own metadata (name,
zone, project, its service account's token) from the metadata server's stand-in and its secrets
from a Secret Manager stand-in that holds the render's SecretVersion values and judges each read
by the render's SecretIamMember grants; asserted through the real API server.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from cfcr.gcp.addon_profile import PROFILE
from cfcr.node.metadata_guard import GUARD_CHAIN, RULE_COMMENT
from cfcr.pki.specs import kubeadm_ca_cert_hash
from cfcr.render.mocks import unwrap
from tests.support.controlplane import ControlPlane, Node
from tests.support.tools import recipe_for, require_program

pytestmark = [pytest.mark.slow, pytest.mark.boots_own_harness]

STACK = "gcp-stable"
TOKEN_GROUP = "system:bootstrappers:kubeadm:default-node-token"
ETCD_TLS = ("--cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt "
            "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key")


@pytest.fixture(scope="module")
def gcp() -> Iterator[ControlPlane]:
    """gcp-stable's 3 members and one VM of pool general, booted once for this module under the
    machine's harness lock (tests/conftest.py)."""
    from tests.conftest import booted_harness

    started = time.monotonic()
    for harness in booted_harness(STACK):
        assert isinstance(harness, ControlPlane)
        assert harness.render.spec.cloud == "gcp" and len(harness.render.members) == 3
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


# --------------------------------------------------------------------------- the control plane

def test_every_member_runs_its_static_pods_at_the_channel_version(gcp: ControlPlane) -> None:
    cp = gcp
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
            assert manifests[name]["spec"]["containers"][0]["image"] == f"registry.k8s.io/{name}:{version}"
        assert manifests["etcd"]["spec"]["containers"][0]["image"] == f"registry.k8s.io/etcd:{cp.render.release.etcd.version}"
        status = node.kubelet_status()
        assert status["pods"] and all(p["running"] for p in status["pods"].values()), (node.role, status["pods"])
    # and each one's mirror Pod says so through the API
    pods = kubectl_json(cp, "get", "pods", "-n", "kube-system")["items"]
    for node in members(cp):
        name = node.kubelet_status()["node"]
        mine = {p["metadata"]["name"].removesuffix(f"-{name}") for p in pods if p["spec"].get("nodeName") == name}
        assert {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} <= mine, (name, mine)


def test_etcd_has_every_rendered_member_and_all_are_healthy(gcp: ControlPlane) -> None:
    cp = gcp
    first = members(cp)[0]
    out = first.run(f"etcdctl --endpoints=https://127.0.0.1:2379 {ETCD_TLS} member list -w json")
    listed = {m["name"]: m["peerURLs"] for m in json.loads(out.stdout)["members"]}
    assert listed == {m.name: [f"https://{m.address}:2380"] for m in cp.render.members}
    health = first.run("etcdctl --endpoints=" + ",".join(f"https://{m.address}:2379" for m in cp.render.members)
                       + f" {ETCD_TLS} endpoint health -w json")
    assert len(json.loads(health.stdout)) == 3 and all(e["health"] for e in json.loads(health.stdout)), health.stdout


def test_anonymous_readyz_answers_200_on_each_member_as_the_load_balancers_check_it(gcp: ControlPlane) -> None:
    require_program("curl")
    cp = gcp
    assert cp.admin is not None
    (check,) = rows(cp, "gcp:compute/regionHealthCheck:RegionHealthCheck")
    https = check["httpsHealthCheck"]
    assert (https["requestPath"], int(https["port"])) == ("/readyz", 6443)
    for member in cp.render.members:
        # no credentials, the certificate unchecked: as Google's health checkers ask
        out = subprocess.run(cp.admin.command("curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}",
                                              f"https://{member.address}:6443{https['requestPath']}"),
                             capture_output=True, text=True, timeout=30)
        assert out.stdout == "200", (member.name, out.stdout, out.stderr)
    status = json.loads((cp.workdir / "lb-status.json").read_text())
    assert status == {f"{m.address}:6443": True for m in cp.render.members}, status


# --------------------------------------------------------------------------- the nodes as GCE gives them

def test_nodes_are_named_as_their_instances_with_gce_provider_ids(gcp: ControlPlane) -> None:
    cp = gcp
    project = str(cp.render.result.exports["project"])
    instances = {str(i["networkInterfaces"][0]["networkIp"]): i for i in rows(cp, "gcp:compute/instance:Instance")}
    nodes = {n["metadata"]["name"]: n for n in kubectl_json(cp, "get", "nodes")["items"]}
    assert set(nodes) == {n.hostname for n in cp.nodes.values()}, sorted(nodes)
    for node in cp.nodes.values():
        if node.member is not None:
            instance = instances[node.member.address]
            assert (node.hostname, node.zone) == (instance["name"], instance["zone"])
            assert node.hostname == cp.render.result.exports["controlPlaneMembers"][node.member.index]["nodeName"]
        else:
            groups = {g["baseInstanceName"]: g["zone"]
                      for g in rows(cp, "gcp:compute/instanceGroupManager:InstanceGroupManager")}
            base = node.hostname.rsplit("-", 1)[0]
            assert groups.get(base) == node.zone, (node.hostname, groups)
        provider = f"gce://{project}/{node.zone}/{node.hostname}"
        assert nodes[node.hostname]["spec"]["providerID"] == provider == cp.provider_id(node)
        # from the metadata server's answers, by the node hook's own identity.sh
        assert node.root.read("/var/lib/cfcr/provider-id").strip() == provider


def _approver_values(cp: ControlPlane) -> dict[str, Any]:
    charts = [yaml.safe_load(p.read_text()) for p in (cp.render.out_dir / "manifests" / "helm").glob("*.yaml")]
    (found,) = [c for c in charts if c["helmChart"]["chart"] == "kubelet-csr-approver"]
    return dict(found["helmChart"]["values"])


def test_every_node_serving_csr_passes_the_rendered_approver(gcp: ControlPlane) -> None:
    from tests.support.csr_approver import decide, serving_request

    cp = gcp
    values = _approver_values(cp)
    assert values["providerRegex"] == PROFILE.node_name_pattern, "the GCP node-name pattern is rendered"
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
    # the serving CSRs the kubelet stand-ins sent were approved by the API's own record
    csrs = [c for c in kubectl_json(cp, "get", "csr")["items"] if c["spec"]["signerName"] == "kubernetes.io/kubelet-serving"]
    assert {c["spec"]["username"].removeprefix("system:node:") for c in csrs} >= {n.hostname for n in cp.nodes.values()}
    # and the approver is not a rubber stamp: a name that is not the node's own is denied
    vm = cp.vm(workers(cp)[0])
    forged = serving_request(f"system:node:{vm.hostname}", [{"type": "Hostname", "address": "kubernetes.default.svc"},
                                                            {"type": "InternalIP", "address": vm.address}])
    assert not decide(values, forged, vm.resolve)[0]
    # the bare instance name resolves from its own zone only (zonal DNS): the approver does not
    # resolve it on GCP, and still refuses an address outside the node network
    assert values["bypassDnsResolution"] is True and not vm.resolve(vm.hostname)
    outside = serving_request(f"system:node:{vm.hostname}", [{"type": "Hostname", "address": vm.hostname},
                                                             {"type": "InternalIP", "address": "192.0.2.7"}])
    assert decide(values, outside, vm.resolve) == (False, "IP SANs ['192.0.2.7'] are outside providerIpPrefixes")


def test_the_worker_joined_through_the_internal_api_name_with_discovery_pinned_to_the_ca(gcp: ControlPlane) -> None:
    cp = gcp
    worker = workers(cp)[0]
    internal_name = f"api.{cp.render.name}.cfcr.internal"
    (record,) = rows(cp, "gcp:dns/recordSet:RecordSet")
    assert record["name"] == f"{internal_name}." and record["rrdatas"] == [cp.lb_addresses["internal"]]
    assert cp.lb_addresses["internal"] == cp.render.result.exports["internalApiLoadBalancerAddress"]
    # the name resolves, on the worker, to the internal load balancer's stand-in and nothing else
    resolved = worker.run(f"getent ahostsv4 {internal_name} | awk '{{print $1}}' | sort -u").stdout.split()
    assert resolved == [cp.lb_addresses["internal"]]
    config = yaml.safe_load(worker.root.read("/etc/cfcr/kubeadm.yaml.tmpl"))
    bootstrap = config["discovery"]["bootstrapToken"]
    assert bootstrap["apiServerEndpoint"] == f"{internal_name}:6443"
    ca = worker.root.read("/etc/kubernetes/pki/ca.crt")
    assert bootstrap["caCertHashes"] == [kubeadm_ca_cert_hash(ca)], "the pin rendered into user-data is the CA's"
    assert "Cluster info signature and contents are valid" in worker.join_output or \
        "[discovery] Successfully established connection with API Server" in worker.join_output, worker.join_output[-2000:]
    kubelet_conf = yaml.safe_load(worker.root.read("/etc/kubernetes/kubelet.conf"))
    assert kubelet_conf["clusters"][0]["cluster"]["server"] == f"https://{internal_name}:6443"
    status = worker.kubelet_status()
    assert status["clientBootstrapped"] and status["registered"], status
    csr = kubectl_json(cp, "get", "csr", status["clientCsr"])
    token_id = csr["spec"]["username"].removeprefix("system:bootstrap:")
    stored = cp.render.secret_values[f"{cp.render.name}-bootstrap-token"]
    assert token_id == stored.split(".")[0], "the worker joined with the token from Secret Manager"
    assert TOKEN_GROUP in csr["spec"]["groups"]
    assert any(c["type"] == "Approved" for c in csr["status"]["conditions"])
    # a joined worker keeps neither the token nor the configuration that held it
    assert not worker.root.exists("/etc/kubernetes/kubeadm.yaml")


# --------------------------------------------------------------------------- Secret Manager and the metadata server

def _readers(cp: ControlPlane) -> dict[str, set[str]]:
    """Service account e-mail -> the secret ids the render grants it secretAccessor on (the
    members' other grant, to rotate the join token, is on that one secret only)."""
    out: dict[str, set[str]] = {}
    for grant in rows(cp, "gcp:secretmanager/secretIamMember:SecretIamMember"):
        if grant["role"] != "roles/secretmanager.secretAccessor":
            assert grant["role"] == "roles/secretmanager.secretVersionManager", grant
            assert str(grant["secretId"]).endswith("-bootstrap-token"), grant
            continue
        out.setdefault(str(grant["member"]).removeprefix("serviceAccount:"), set()).add(str(grant["secretId"]))
    return out


def test_each_role_read_only_its_own_secrets_with_its_service_accounts_token(gcp: ControlPlane) -> None:
    cp = gcp
    readers = _readers(cp)
    state = cp.cloud_state()
    accounts = {address: i["service_account"] for address, i in state["instances"].items()}
    assert set(accounts) == {n.host.address for n in cp.nodes.values()}
    reads = [r for r in state["log"] if r["client"] in accounts]
    assert reads, "the nodes read their secrets from the stand-in"
    for read in reads:
        assert read["service_account"] == accounts[read["client"]], f"a token of another VM was used: {read}"
        granted = read["secret"] in readers.get(read["service_account"], set())
        assert read["status"] == (200 if granted else 403), f"decided against the render's grants: {read}"
    for node in cp.nodes.values():
        account = accounts[node.host.address]
        read = {r["secret"] for r in reads if r["client"] == node.host.address and r["status"] == 200}
        assert read == readers[account], (node.role, sorted(read ^ readers[account]))
        refused = [r for r in reads if r["client"] == node.host.address and r["status"] != 200]
        assert not refused, f"{node.role}'s boot asked for secrets outside its grants: {refused}"
    # the roles' grants, as the render's secretReaders export names them
    exported = cp.render.result.exports["secretReaders"]
    by_role = {role: email for role, email in cp.render.result.exports["serviceAccounts"].items()}
    for secret, roles in exported.items():
        assert {s for s in roles} == {r for r, e in by_role.items() if secret in readers.get(e, set())}, secret


def _read(node: Node, secret: str) -> subprocess.CompletedProcess[str]:
    return node.run(f". /etc/cfcr/secrets.sh && cfcr_gcp_secret_get {secret} >/dev/null", check=False)


def test_secret_manager_refuses_a_read_outside_the_roles_grants(gcp: ControlPlane) -> None:
    cp = gcp
    name = cp.render.name
    worker, member0, member1 = workers(cp)[0], members(cp)[0], members(cp)[1]
    member0_peer_key = f"{name}-etcd-members-{name}-cp-0-peer-key"
    attempts = [(worker, f"{name}-ca-key"), (worker, member0_peer_key), (member1, member0_peer_key)]
    for node, secret in attempts:
        out = _read(node, secret)
        assert out.returncode != 0 and "PERMISSION_DENIED" in out.stderr, (node.role, secret, out.stderr)
    allowed = _read(member0, member0_peer_key)
    assert allowed.returncode == 0, allowed.stderr
    log = cp.cloud_state()["log"]
    for node, secret in attempts:
        assert any(r["client"] == node.host.address and r["secret"] == secret and r["status"] == 403 for r in log)


def test_every_node_keeps_pods_from_the_metadata_server(gcp: ControlPlane) -> None:
    cp = gcp
    for node in cp.nodes.values():
        rules = node.run("iptables -w -t mangle -S FORWARD").stdout
        assert f"-A FORWARD -d 169.254.169.254/32 -m comment --comment \"{RULE_COMMENT}\" -j {GUARD_CHAIN}" in rules, (
            node.role, rules)
        chain = node.run(f"iptables -w -t mangle -S {GUARD_CHAIN}").stdout
        assert chain.splitlines()[-1].startswith(f"-A {GUARD_CHAIN} -m comment") and chain.rstrip().endswith("-j DROP"), (
            node.role, chain)
        assert f"-A {GUARD_CHAIN} -p udp -m udp --dport 53" in chain, (node.role, chain)
        # the node itself (OUTPUT, not FORWARD) still reaches it: its provider ID came from there
        out = node.run("curl -fsS -H 'Metadata-Flavor: Google' http://169.254.169.254/computeMetadata/v1/instance/name")
        assert out.stdout == node.hostname


# --------------------------------------------------------------------------- data at rest

def test_a_secret_is_encrypted_in_etcd(gcp: ControlPlane) -> None:
    cp = gcp
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
