"""``pulumi up`` of stacks/Pulumi.aws-stable.yaml on a real AWS account, through the
Automation API: nodes Ready, a smoke workload, ``cfcr smoke``, ``pulumi destroy``, and nothing tagged for the
cluster left behind.

Runs where the Pulumi CLI, kubectl and AWS credentials exist; skipped, saying why, elsewhere.
It costs money (a few dollars per run: see docs/aws.md) and takes about 20 minutes.
Set ``CFCR_E2E_AWS_REGION`` to run elsewhere than the stack's region, and
``CFCR_E2E_ALLOWED_CIDR`` to the CIDR of the machine running it (default: its public IP/32).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cfcr.config import read_stack_config
from cfcr.render import stack_config_strings

from .conftest import ROOT, my_cidr, run_with

pytestmark = pytest.mark.e2e

READY_TIMEOUT_S = 30 * 60


@pytest.fixture(scope="session")
def aws_session() -> Any:
    boto3 = pytest.importorskip("boto3", reason="boto3 is not installed (pip install boto3) for the AWS e2e test")
    session = boto3.session.Session()
    if session.get_credentials() is None:
        pytest.skip("no AWS credentials (environment, profile or instance role) for the AWS e2e test")
    return session








def _wait(what: str, check: Any, timeout: float = READY_TIMEOUT_S, every: float = 15) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = check()
        if ok:
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}: {last}")


RETAINED_TAG = "cfcr.io/retained"
"""What `pulumi destroy` keeps on purpose carries this tag (docs/aws.md, "What pulumi destroy keeps")."""


def _tagged(session: Any, region: str, filters: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """ARN -> tags of every resource the tagging API finds for ``filters``."""
    tagging = session.client("resourcegroupstaggingapi", region_name=region)
    found: dict[str, dict[str, str]] = {}
    for page in tagging.get_paginator("get_resources").paginate(TagFilters=filters):
        for m in page["ResourceTagMappingList"]:
            found[m["ResourceARN"]] = {t["Key"]: t["Value"] for t in m.get("Tags", [])}
    return found


def _retained(session: Any, region: str, cluster: str) -> dict[str, str]:
    """ARN -> why it was kept, for every resource of ``cluster`` that `pulumi destroy` left; a
    resource left without the retained tag is named with an empty reason."""
    kept = _tagged(session, region, [{"Key": "cfcr.io/cluster", "Values": [cluster]}])
    kms = session.client("kms", region_name=region)
    out = {}
    for arn, tags in kept.items():
        if ":key/" in arn and kms.describe_key(KeyId=arn)["KeyMetadata"]["KeyState"] == "PendingDeletion":
            continue  # the secrets key: scheduled for deletion by destroy
        out[arn] = tags.get(RETAINED_TAG, "")
    return out


def _remove_backups(session: Any, region: str, retained: dict[str, str]) -> None:
    """What docs/backups.md ("After pulumi destroy") says to run: empty and delete the bucket,
    then schedule the key's deletion."""
    s3, kms = session.client("s3", region_name=region), session.client("kms", region_name=region)
    for arn in [a for a in retained if a.startswith("arn:aws:s3:::")]:
        bucket = arn.split(":::", 1)[1]
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            objects = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                       for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            if objects:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
        s3.delete_bucket(Bucket=bucket)
    for arn in [a for a in retained if ":key/" in a]:
        kms.schedule_key_deletion(KeyId=arn, PendingWindowInDays=7)


def _tagged_leftovers(session: Any, region: str, cluster: str) -> list[str]:
    arns = list(_tagged(session, region, [{"Key": f"kubernetes.io/cluster/{cluster}"}]))
    # Secrets scheduled for deletion and terminated instances still answer the tagging API
    ec2 = session.client("ec2", region_name=region)
    live = []
    for arn in arns:
        if ":instance/" in arn:
            state = ec2.describe_instances(InstanceIds=[arn.rsplit("/", 1)[1]])["Reservations"]
            if all(i["State"]["Name"] == "terminated" for r in state for i in r["Instances"]):
                continue
        live.append(arn)
    return live


@pytest.fixture()
def aws_stack(pulumi_cli: str, local_backend: str, aws_session: Any) -> Iterator[tuple[Any, str, str]]:
    from pulumi import automation as auto

    cluster = f"cfcr-e2e-{uuid.uuid4().hex[:6]}"
    config = stack_config_strings(read_stack_config("aws-stable"))
    region = os.environ.get("CFCR_E2E_AWS_REGION", config["cfcr:region"])
    config.update({
        "cfcr:name": cluster, "cfcr:region": region, "aws:region": region,
        "cfcr:networking": json.dumps({"apiPublic": True, "apiAllowedCidrs": [my_cidr()]}),
        "cfcr:controlPlane": json.dumps({"count": 3}),
    })
    env = {"PULUMI_BACKEND_URL": local_backend, "PULUMI_CONFIG_PASSPHRASE": "cfcr-e2e"}
    stack = auto.create_or_select_stack(cluster, work_dir=str(ROOT), opts=auto.LocalWorkspaceOptions(env_vars=env))
    stack.set_all_config({k: auto.ConfigValue(v) for k, v in config.items()})
    try:
        yield stack, cluster, region
    finally:
        # the etcd volumes are protected (they outlive VMs); a deliberate destroy unprotects them
        subprocess.run([pulumi_cli, "state", "unprotect", "--all", "--yes", "--stack", cluster],
                       cwd=ROOT, env={**os.environ, **env}, check=False)
        stack.destroy(on_output=print)
        leftovers = _tagged_leftovers(aws_session, region, cluster)
        retained = _retained(aws_session, region, cluster)
        stack.workspace.remove_stack(cluster)
        _remove_backups(aws_session, region, retained)
        assert leftovers == [], f"left behind after destroy: {leftovers}"
        # only what is documented as kept on purpose: the snapshot bucket and its key
        assert sorted(retained.values()) == ["etcd-backups", "etcd-backups"], retained


def test_up_nodes_ready_smoke_workload_destroy(aws_stack: tuple[Any, str, str], kubectl: str,
                                               tmp_path: Path) -> None:
    stack, cluster, _ = aws_stack
    result = stack.up(on_output=print)
    outputs = result.outputs
    assert outputs["adminKubeconfig"].secret
    kubeconfig = tmp_path / "admin.kubeconfig"
    kubeconfig.write_text(outputs["adminKubeconfig"].value)
    kubeconfig.chmod(0o600)
    spec_nodes = 3 + 3  # aws-stable: 3 control-plane members, pool "general" desiredSize 3

    def nodes_ready() -> tuple[bool, Any]:
        done = run_with([kubectl, "get", "nodes", "-o", "json"], kubeconfig)
        if done.returncode != 0:
            return False, done.stderr
        items = json.loads(done.stdout)["items"]
        ready = [n["metadata"]["name"] for n in items
                 if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])]
        return len(ready) >= spec_nodes, ready

    _wait(f"{spec_nodes} Ready nodes", nodes_ready)

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
    run_with([kubectl, "delete", "service,deployment", name], kubeconfig)

    # cfcr's own smoke command, as an operator runs it after `pulumi up`: every check passes
    smoke = subprocess.run([sys.executable, "-m", "cfcr", "smoke", "--kubeconfig", str(kubeconfig)],
                           cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    print(smoke.stdout, smoke.stderr)
    assert smoke.returncode == 0 and "smoke test PASSED" in smoke.stdout, smoke.stdout + smoke.stderr
    assert "FAIL" not in smoke.stdout
