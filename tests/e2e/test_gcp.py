"""``pulumi up`` of stacks/Pulumi.gcp-stable.yaml in a real Google Cloud project, through the
Automation API: nodes Ready, a smoke workload, ``cfcr smoke``, ``pulumi destroy``, and nothing
of the cluster left behind but the snapshot bucket kept on purpose (then removed).

Runs where the Pulumi CLI, kubectl, gcloud, Application Default Credentials and
``CFCR_E2E_GCP_PROJECT`` (a project of yours, APIs enabled as docs/gcp.md says) exist; skipped,
saying which is missing, elsewhere. It costs money (see docs/gcp.md) and takes about 20 minutes.
``CFCR_E2E_GCP_REGION`` runs it elsewhere than the stack's region (the stack's zones are then
dropped, so the region's first zones are used); ``CFCR_E2E_ALLOWED_CIDR`` is the CIDR of the
machine running it (default: its public IP/32).

What is left after destroy is listed with the gcloud CLI (one tool for compute, Secret Manager,
IAM, Cloud DNS and Cloud Storage alike): every resource whose name contains the cluster's
unique name, or that carries the label ``cfcr-cluster=<cluster>`` (``cfcr.gcp.labels``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cfcr.config import read_stack_config
from cfcr.config.load import load_spec
from cfcr.render import stack_config_strings

from .conftest import ROOT, my_cidr, run_with

pytestmark = pytest.mark.e2e

STACK = "gcp-stable"
READY_TIMEOUT_S = 30 * 60
CLUSTER_LABEL = "cfcr-cluster"
"""The label every GCP resource of a cluster carries (``cfcr.gcp.labels.CLUSTER_LABEL``)."""

LISTED = {
    "instances": ["compute", "instances", "list"],
    "disks": ["compute", "disks", "list"],
    "addresses": ["compute", "addresses", "list"],
    "forwarding rules": ["compute", "forwarding-rules", "list"],
    "target TCP proxies": ["compute", "target-tcp-proxies", "list"],
    "backend services": ["compute", "backend-services", "list"],
    "health checks": ["compute", "health-checks", "list"],
    "instance groups": ["compute", "instance-groups", "list"],
    "instance templates": ["compute", "instance-templates", "list"],
    "firewall rules": ["compute", "firewall-rules", "list"],
    "routers": ["compute", "routers", "list"],
    "subnetworks": ["compute", "networks", "subnets", "list"],
    "networks": ["compute", "networks", "list"],
    "secrets": ["secrets", "list"],
    "DNS zones": ["dns", "managed-zones", "list"],
    "service accounts": ["iam", "service-accounts", "list"],
    "custom roles": ["iam", "roles", "list"],
    "buckets": ["storage", "buckets", "list"],
}
"""Everything a cluster creates, by the gcloud command that lists it (deleted custom roles and
service accounts are not listed by default, as intended: both stay soft-deleted by GCP)."""


@pytest.fixture(scope="session")
def gcp_project() -> str:
    project = os.environ.get("CFCR_E2E_GCP_PROJECT", "")
    if not project:
        pytest.skip("CFCR_E2E_GCP_PROJECT is not set: name a Google Cloud project of yours (billing and the "
                    "APIs of docs/gcp.md enabled) for the GCP e2e test")
    return project


@pytest.fixture(scope="session")
def gcloud(gcp_project: str) -> str:
    path = shutil.which("gcloud")
    if path is None:
        pytest.skip("the gcloud CLI is not installed; the GCP e2e test lists what destroy leaves with it")
    done = subprocess.run([path, "auth", "application-default", "print-access-token"],
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        pytest.skip("no Application Default Credentials for the GCP e2e test "
                    f"(run: gcloud auth application-default login): {done.stderr.strip()[:200]}")
    return path








def _wait(what: str, check: Any, timeout: float = READY_TIMEOUT_S, every: float = 15) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = check()
        if ok:
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}: {last}")


def _stack_config(cluster: str, project: str) -> dict[str, str]:
    """gcp-stable's config for a test cluster: its own name and project, a public API open to
    this machine only, and optionally another region."""
    raw = read_stack_config(STACK)
    region = os.environ.get("CFCR_E2E_GCP_REGION") or str(raw["cfcr:region"])
    if region != raw["cfcr:region"]:
        raw["cfcr:controlPlane"] = {k: v for k, v in (raw.get("cfcr:controlPlane") or {}).items() if k != "zones"}
        raw["cfcr:nodePools"] = [{k: v for k, v in pool.items() if k != "zones"}
                                 for pool in raw.get("cfcr:nodePools") or []]
    networking = dict(raw.get("cfcr:networking") or {})
    networking.update({"apiPublic": True, "apiAllowedCidrs": [my_cidr()]})
    raw.update({"cfcr:name": cluster, "cfcr:region": region, "gcp:region": region, "gcp:project": project,
                "cfcr:networking": networking})
    return stack_config_strings(raw)


def _gcloud_json(gcloud: str, project: str, args: list[str]) -> list[dict[str, Any]]:
    done = subprocess.run([gcloud, *args, f"--project={project}", "--format=json"],
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise AssertionError(f"gcloud {' '.join(args)} failed: {done.stderr.strip()}")
    return list(json.loads(done.stdout or "[]"))


def _of_cluster(item: dict[str, Any], cluster: str) -> bool:
    """The cluster's resource: its name (or email, or role id, whose ``-`` are ``_``) holds the
    cluster's unique name, or it carries the cluster label."""
    names = " ".join(str(item.get(k, "")) for k in ("name", "email", "title"))
    labels = item.get("labels") or {}
    return cluster in names or cluster.replace("-", "_") in names or labels.get(CLUSTER_LABEL) == cluster


def _left(gcloud: str, project: str, cluster: str) -> dict[str, list[dict[str, Any]]]:
    """Kind -> the cluster's resources of that kind that still exist."""
    out = {}
    for kind, args in LISTED.items():
        found = [item for item in _gcloud_json(gcloud, project, args) if _of_cluster(item, cluster)]
        if found:
            out[kind] = found
    return out


def _remove_buckets(gcloud: str, project: str, buckets: list[dict[str, Any]]) -> None:
    """What docs/gcp.md ("What pulumi destroy keeps") says to run: every object, then the bucket."""
    for bucket in buckets:
        name = bucket.get("name") or str(bucket.get("storage_url", "")).removeprefix("gs://").rstrip("/")
        subprocess.run([gcloud, "storage", "rm", "--recursive", f"gs://{name}", f"--project={project}"],
                       check=True, timeout=900)


@pytest.fixture()
def gcp_stack(pulumi_cli: str, local_backend: str, gcp_project: str, gcloud: str) -> Iterator[tuple[Any, int]]:
    from pulumi import automation as auto

    cluster = f"cfcr-e2e-{uuid.uuid4().hex[:6]}"
    config = _stack_config(cluster, gcp_project)
    spec = load_spec(config, cluster)  # a config mistake fails here, before anything is billed
    nodes = spec.control_plane.count + sum(
        p.desired_size if p.desired_size is not None else p.min_size for p in spec.node_pools)
    env = {"PULUMI_BACKEND_URL": local_backend, "PULUMI_CONFIG_PASSPHRASE": "cfcr-e2e"}
    stack = auto.create_or_select_stack(cluster, work_dir=str(ROOT), opts=auto.LocalWorkspaceOptions(env_vars=env))
    stack.set_all_config({k: auto.ConfigValue(v) for k, v in config.items()})
    try:
        yield stack, nodes
    finally:
        # the etcd disks are protected (they outlive VMs); a deliberate destroy unprotects them
        subprocess.run([pulumi_cli, "state", "unprotect", "--all", "--yes", "--stack", cluster],
                       cwd=ROOT, env={**os.environ, **env}, check=False)
        stack.destroy(on_output=print)
        left = _left(gcloud, gcp_project, cluster)
        stack.workspace.remove_stack(cluster)
        kept = left.pop("buckets", [])
        _remove_buckets(gcloud, gcp_project, kept)
        assert left == {}, f"left behind after destroy: {json.dumps(left, indent=1)[:4000]}"
        # only what is documented as kept on purpose: the etcd snapshot bucket, when backups are on
        assert len(kept) == (1 if spec.etcd_backups.enabled else 0), kept


def test_up_nodes_ready_smoke_workload_destroy(gcp_stack: tuple[Any, int], kubectl: str, tmp_path: Path) -> None:
    stack, spec_nodes = gcp_stack
    result = stack.up(on_output=print)
    outputs = result.outputs
    assert outputs["adminKubeconfig"].secret
    kubeconfig = tmp_path / "admin.kubeconfig"
    kubeconfig.write_text(outputs["adminKubeconfig"].value)
    kubeconfig.chmod(0o600)

    def nodes_ready() -> tuple[bool, Any]:
        done = run_with([kubectl, "get", "nodes", "-o", "json"], kubeconfig)
        if done.returncode != 0:
            return False, done.stderr
        items = json.loads(done.stdout)["items"]
        ready = [n["metadata"]["name"] for n in items
                 if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])]
        return len(ready) >= spec_nodes, ready

    _wait(f"{spec_nodes} Ready nodes", nodes_ready)

    # every node carries its GCE provider ID (the node hook sets it; the cloud controller manager needs it)
    done = run_with([kubectl, "get", "nodes", "-o", "jsonpath={.items[*].spec.providerID}"], kubeconfig)
    assert done.returncode == 0, done.stderr
    ids = done.stdout.split()
    assert len(ids) >= spec_nodes and all(i.startswith("gce://") for i in ids), ids

    name = "cfcr-smoke"
    assert run_with([kubectl, "create", "deployment", name, "--image=registry.k8s.io/e2e-test-images/agnhost:2.53",
                 "--replicas=2", "--", "/agnhost", "netexec", "--http-port=8080"], kubeconfig).returncode == 0
    done = run_with([kubectl, "rollout", "status", f"deployment/{name}", "--timeout=10m"], kubeconfig)
    assert done.returncode == 0, done.stderr
    assert run_with([kubectl, "expose", "deployment", name, "--port=80", "--target-port=8080"], kubeconfig).returncode == 0
    done = run_with([kubectl, "run", "cfcr-smoke-client", "--rm", "-i", "--restart=Never",
                 "--image=registry.k8s.io/e2e-test-images/agnhost:2.53", "--",
                 "/agnhost", "connect", f"{name}.default.svc.cluster.local:80", "--timeout=30s"],
                kubeconfig, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    # a pod (not host-network) must not reach the metadata server (docs/gcp.md, "Pods and the metadata server")
    done = run_with([kubectl, "run", "cfcr-metadata-probe", "--rm", "-i", "--restart=Never",
                 "--image=registry.k8s.io/e2e-test-images/agnhost:2.53", "--",
                 "/agnhost", "connect", "169.254.169.254:80", "--timeout=10s"],
                kubeconfig, timeout=600)
    # agnhost's own failure classes, so that a pod that never ran does not pass for a blocked one
    blocked = ("TIMEOUT", "REFUSED", "no route to host")
    assert done.returncode != 0 and any(b in done.stdout + done.stderr for b in blocked), (
        "a pod reached the metadata server, or the probe did not run: " + done.stdout + done.stderr)
    run_with([kubectl, "delete", "service,deployment", name], kubeconfig)

    # cfcr's own smoke command, as an operator runs it after `pulumi up`: every check passes
    smoke = subprocess.run([sys.executable, "-m", "cfcr", "smoke", "--kubeconfig", str(kubeconfig)],
                           cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    print(smoke.stdout, smoke.stderr)
    assert smoke.returncode == 0 and "smoke test PASSED" in smoke.stdout, smoke.stdout + smoke.stderr
    assert "FAIL" not in smoke.stdout
