"""``pulumi up`` of stacks/Pulumi.azure-stable.yaml in a real Azure subscription, through the
Automation API: nodes Ready with Azure provider IDs, a smoke workload, pods kept from IMDS and
the WireServer, ``cfcr smoke``, ``pulumi destroy``, and nothing of the cluster left behind but
the soft-deleted Key Vault Azure keeps (then purged).

Runs where the Pulumi CLI, kubectl, the Azure CLI with a login (``az login``, or a service
principal through the provider's ``ARM_*`` variables and ``az login --service-principal``) and a
subscription (``ARM_SUBSCRIPTION_ID``, else the CLI's current one) exist, with the resource
providers and the ``EncryptionAtHost`` feature registered as docs/azure.md says; skipped, saying
which is missing, elsewhere. It costs money (see docs/azure.md) and takes about 30 minutes.
``CFCR_E2E_AZURE_REGION`` runs it elsewhere than the stack's region (a region with availability
zones: the stack's zones 1, 2, 3 are kept); ``CFCR_E2E_ALLOWED_CIDR`` is the CIDR of the machine
running it (default: its public IP/32).

What is left after destroy is listed with the Azure CLI: the cluster's resource group, every
resource of the subscription tagged ``cfcr-cluster=<cluster>`` (``cfcr.azure.tags.CLUSTER_TAG``),
and custom roles named after the cluster.
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

from cfcr.azure.names import RESOURCE_GROUP_MAX, key_vault_name, resource_name
from cfcr.config import read_stack_config
from cfcr.config.load import load_spec
from cfcr.render import stack_config_strings

from .conftest import ROOT, my_cidr, run_with

pytestmark = pytest.mark.e2e

STACK = "azure-stable"
READY_TIMEOUT_S = 40 * 60
CLUSTER_TAG = "cfcr-cluster"
"""The tag every Azure resource of a cluster carries (``cfcr.azure.tags.CLUSTER_TAG``)."""
IMDS = "169.254.169.254:80"
WIRESERVER = "168.63.129.16:80"
"""The WireServer's agent port; its DNS (53) stays open to pods on purpose (docs/azure.md)."""
PROBE_IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.53"


@pytest.fixture(scope="session")
def az() -> str:
    path = shutil.which("az")
    if path is None:
        pytest.skip("the Azure CLI (az) is not installed; the Azure e2e test signs in and lists what destroy "
                    "leaves with it (https://learn.microsoft.com/cli/azure/install-azure-cli)")
    return path


@pytest.fixture(scope="session")
def azure_subscription(az: str) -> str:
    """``ARM_SUBSCRIPTION_ID``, else the Azure CLI's current subscription; skipped without a login."""
    done = subprocess.run([az, "account", "show", "--output", "json"], capture_output=True, text=True,
                          timeout=120, check=False)
    if done.returncode != 0:
        pytest.skip("no Azure login for the Azure e2e test (run: az login, or az login --service-principal "
                    f"with ARM_CLIENT_ID/ARM_TENANT_ID): {done.stderr.strip()[:200]}")
    current = str(json.loads(done.stdout or "{}").get("id", ""))
    subscription = os.environ.get("ARM_SUBSCRIPTION_ID") or current
    if not subscription:
        pytest.skip("no subscription for the Azure e2e test: set ARM_SUBSCRIPTION_ID or az account set --subscription")
    return subscription


def _wait(what: str, check: Any, timeout: float = READY_TIMEOUT_S, every: float = 15) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = check()
        if ok:
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}: {last}")


def _stack_config(cluster: str, subscription: str) -> dict[str, str]:
    """azure-stable's config for a test cluster: its own name and subscription, a public API open
    to this machine only, and optionally another region."""
    raw = read_stack_config(STACK)
    region = os.environ.get("CFCR_E2E_AZURE_REGION") or str(raw["cfcr:region"])
    networking = dict(raw.get("cfcr:networking") or {})
    networking.update({"apiPublic": True, "apiAllowedCidrs": [my_cidr()]})
    raw.update({"cfcr:name": cluster, "cfcr:region": region, "azure-native:location": region,
                "azure-native:subscriptionId": subscription, "cfcr:networking": networking})
    return stack_config_strings(raw)


def _az_json(az: str, subscription: str, args: list[str]) -> Any:
    done = subprocess.run([az, *args, "--subscription", subscription, "--output", "json"],
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise AssertionError(f"az {' '.join(args)} failed: {done.stderr.strip()}")
    return json.loads(done.stdout or "null")


def _left(az: str, subscription: str, cluster: str, group: str) -> dict[str, Any]:
    """Kind -> what of the cluster still exists (the soft-deleted vault is not listed here)."""
    out: dict[str, Any] = {}
    if _az_json(az, subscription, ["group", "exists", "--name", group]):
        out["resource group"] = group
    tagged = _az_json(az, subscription, ["resource", "list", "--tag", f"{CLUSTER_TAG}={cluster}"]) or []
    if tagged:
        out["tagged resources"] = [f"{r.get('type')}/{r.get('name')}" for r in tagged]
    roles = _az_json(az, subscription, ["role", "definition", "list", "--custom-role-only", "true"]) or []
    mine = [r.get("roleName") for r in roles if f"cfcr {cluster} " in str(r.get("roleName", ""))]
    if mine:
        out["custom roles"] = mine
    return out


def _deleted_vaults(az: str, subscription: str, cluster: str) -> list[str]:
    """The cluster's soft-deleted Key Vaults: tagged ``cfcr-cluster=<cluster>``, or named
    ``<cluster head>-<suffix>`` (``cfcr.azure.names.key_vault_name``)."""
    head = key_vault_name(cluster, "0" * 6).rsplit("-", 1)[0] + "-"
    vaults = _az_json(az, subscription, ["keyvault", "list-deleted", "--resource-type", "vault"]) or []
    return [str(v["name"]) for v in vaults
            if ((v.get("properties") or {}).get("tags") or {}).get(CLUSTER_TAG) == cluster
            or str(v.get("name", "")).startswith(head)]


@pytest.fixture()
def azure_stack(az: str, azure_subscription: str, pulumi_cli: str, local_backend: str) -> Iterator[tuple[Any, int]]:
    from pulumi import automation as auto

    cluster = f"cfcr-e2e-{uuid.uuid4().hex[:6]}"
    config = _stack_config(cluster, azure_subscription)
    spec = load_spec(config, cluster)  # a config mistake fails here, before anything is billed
    nodes = spec.control_plane.count + sum(
        p.desired_size if p.desired_size is not None else p.min_size for p in spec.node_pools)
    env = {"PULUMI_BACKEND_URL": local_backend, "PULUMI_CONFIG_PASSPHRASE": "cfcr-e2e",
           "ARM_SUBSCRIPTION_ID": azure_subscription}
    stack = auto.create_or_select_stack(cluster, work_dir=str(ROOT), opts=auto.LocalWorkspaceOptions(env_vars=env))
    stack.set_all_config({k: auto.ConfigValue(v) for k, v in config.items()})
    try:
        yield stack, nodes
    finally:
        # the etcd disks are protected (they outlive VMs); a deliberate destroy unprotects them
        subprocess.run([pulumi_cli, "state", "unprotect", "--all", "--yes", "--stack", cluster],
                       cwd=ROOT, env={**os.environ, **env}, check=False)
        stack.destroy(on_output=print)
        group = resource_name(f"{cluster}-rg", limit=RESOURCE_GROUP_MAX, keep="-rg")  # cfcr.azure.network.resource_group
        left = _left(az, azure_subscription, cluster, group)
        stack.workspace.remove_stack(cluster)
        # what Azure keeps on purpose: the soft-deleted vault (docs/azure.md, "Destroy"); not production,
        # so no purge protection: purge it, as the docs say to
        kept = _deleted_vaults(az, azure_subscription, cluster)
        for vault in kept:
            subprocess.run([az, "keyvault", "purge", "--name", vault, "--subscription", azure_subscription],
                           check=True, timeout=1800)
        assert left == {}, f"left behind after destroy: {json.dumps(left, indent=1)[:4000]}"
        assert len(kept) == 1, f"expected the cluster's one soft-deleted Key Vault, found {kept}"


def _cannot_reach(kubeconfig: Path, kubectl: str, pod: str, target: str) -> tuple[bool, str]:
    """A pod (not host-network) that tries ``target``: True when agnhost says it was blocked (not
    when the pod never ran)."""
    done = run_with([kubectl, "run", pod, "--rm", "-i", "--restart=Never", f"--image={PROBE_IMAGE}", "--",
                     "/agnhost", "connect", target, "--timeout=10s"], kubeconfig, timeout=600)
    blocked = ("TIMEOUT", "REFUSED", "no route to host")
    out = done.stdout + done.stderr
    return done.returncode != 0 and any(b in out for b in blocked), out


def test_up_nodes_ready_smoke_workload_destroy(azure_stack: tuple[Any, int], kubectl: str, tmp_path: Path) -> None:
    stack, spec_nodes = azure_stack
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

    # every node carries its Azure provider ID (the node hook sets it from IMDS; the CCM needs it)
    done = run_with([kubectl, "get", "nodes", "-o", "jsonpath={.items[*].spec.providerID}"], kubeconfig)
    assert done.returncode == 0, done.stderr
    ids = done.stdout.split()
    assert len(ids) >= spec_nodes and all(i.startswith("azure:///subscriptions/") for i in ids), ids

    name = "cfcr-smoke"
    assert run_with([kubectl, "create", "deployment", name, f"--image={PROBE_IMAGE}",
                     "--replicas=2", "--", "/agnhost", "netexec", "--http-port=8080"], kubeconfig).returncode == 0
    done = run_with([kubectl, "rollout", "status", f"deployment/{name}", "--timeout=10m"], kubeconfig)
    assert done.returncode == 0, done.stderr
    assert run_with([kubectl, "expose", "deployment", name, "--port=80", "--target-port=8080"],
                    kubeconfig).returncode == 0
    done = run_with([kubectl, "run", "cfcr-smoke-client", "--rm", "-i", "--restart=Never", f"--image={PROBE_IMAGE}",
                     "--", "/agnhost", "connect", f"{name}.default.svc.cluster.local:80", "--timeout=30s"],
                    kubeconfig, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    # pods reach neither IMDS (the VM's identity tokens) nor the WireServer (docs/azure.md, "Pods, IMDS
    # and the WireServer")
    for pod, target in (("cfcr-imds-probe", IMDS), ("cfcr-wireserver-probe", WIRESERVER)):
        blocked, out = _cannot_reach(kubeconfig, kubectl, pod, target)
        assert blocked, f"a pod reached {target}, or the probe did not run: {out}"
    run_with([kubectl, "delete", "service,deployment", name], kubeconfig)

    # cfcr's own smoke command, as an operator runs it after `pulumi up`: every check passes
    smoke = subprocess.run([sys.executable, "-m", "cfcr", "smoke", "--kubeconfig", str(kubeconfig)],
                           cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    print(smoke.stdout, smoke.stderr)
    assert smoke.returncode == 0 and "smoke test PASSED" in smoke.stdout, smoke.stdout + smoke.stderr
    assert "FAIL" not in smoke.stdout
