"""The pack on GCP resources built with pulumi-gcp itself (so every property name is the one the
engine hands the policies): a hardened set of cluster resources passes the whole pack, and each
weakening is reported by exactly the policy that owns it. Then the GCP rules on constructed
props, both ways."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from typing import Any

import pulumi_gcp as gcp
import pytest
from pulumi_gcp import compute, projects, secretmanager

from cfcr.policy import types as t
from cfcr.policy.runner import PackReport, run_pack
from tests.support.policy import b64, check, res, stack_check
from tests.support.pulumi_mocks import MockRecording, pulumi_mocks, run_program

__all__ = ["pulumi_mocks"]  # the fixture

LABELS = {"owner": "platform-team", "cost-centre": "cc-1234"}
CP_SA = "c-cp@example-project.iam.gserviceaccount.com"
WORKER_SA = "c-general@example-project.iam.gserviceaccount.com"
KEY = "projects/example-project/locations/europe-west4/keyRings/r/cryptoKeys/disks"
PEM = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIAbc\n-----END EC PRIVATE KEY-----\n"
USER_DATA = "#cloud-config\nwrite_files:\n- path: /etc/cfcr/hook\n  content: |\n    fetch from Secret Manager\n"
METADATA = {"user-data": USER_DATA, "block-project-ssh-keys": "TRUE", "serial-port-enable": "FALSE"}
SHIELDED = {"enable_secure_boot": True, "enable_vtpm": True, "enable_integrity_monitoring": True}
Kwargs = dict[str, Any]
Change = Callable[[dict[str, Kwargs]], None]


def _cluster(change: Change | None) -> None:
    """Build a hardened GCP cluster's resources, after ``change`` edited their arguments."""
    args: dict[str, Kwargs] = {
        "fw-api": dict(network="c", direction="INGRESS", allows=[compute.FirewallAllowArgs(protocol="tcp", ports=["6443"])],
                       source_ranges=["203.0.113.0/24", "35.191.0.0/16", "209.85.152.0/22"],
                       target_service_accounts=[CP_SA]),
        "fw-etcd": dict(network="c", allows=[compute.FirewallAllowArgs(protocol="tcp", ports=["2379-2380"])],
                        source_service_accounts=[CP_SA], target_service_accounts=[CP_SA]),
        "fw-kube-proxy-hc": dict(network="c", allows=[compute.FirewallAllowArgs(protocol="tcp", ports=["10256"])],
                                 source_ranges=["35.191.0.0/16", "130.211.0.0/22"],
                                 target_service_accounts=[WORKER_SA]),
        "fw-nodes": dict(network="c", allows=[compute.FirewallAllowArgs(protocol="udp", ports=["8472"])],
                         source_ranges=["10.0.0.0/17"], target_service_accounts=[CP_SA, WORKER_SA]),
        "etcd-disk": dict(zone="europe-west4-a", type="pd-ssd", size=20, labels=LABELS),
        "cp": dict(zone="europe-west4-a", machine_type="e2-standard-2", labels=LABELS,
                   boot_disk=compute.InstanceBootDiskArgs(initialize_params=compute.InstanceBootDiskInitializeParamsArgs(
                       image="ubuntu-os-cloud/ubuntu-2404-lts-amd64", type="pd-balanced")),
                   network_interfaces=[compute.InstanceNetworkInterfaceArgs(subnetwork="c-nodes", network_ip="10.0.0.10")],
                   metadata=dict(METADATA), shielded_instance_config=compute.InstanceShieldedInstanceConfigArgs(**SHIELDED),
                   service_account=compute.InstanceServiceAccountArgs(email=CP_SA, scopes=["cloud-platform"])),
        "template": dict(machine_type="e2-standard-2", labels=LABELS,
                         disks=[compute.InstanceTemplateDiskArgs(source_image="ubuntu-os-cloud/ubuntu-2404-lts-amd64",
                                                                 boot=True, disk_type="pd-balanced")],
                         network_interfaces=[compute.InstanceTemplateNetworkInterfaceArgs(subnetwork="c-nodes")],
                         metadata={**METADATA, "kube-env": "AUTOSCALER_ENV_VARS: node_labels=pool=general\n"},
                         shielded_instance_config=compute.InstanceTemplateShieldedInstanceConfigArgs(**SHIELDED),
                         service_account=compute.InstanceTemplateServiceAccountArgs(email=WORKER_SA,
                                                                                    scopes=["cloud-platform"])),
        "mig": dict(zone="europe-west4-a", base_instance_name="c-general",
                    auto_healing_policies=compute.InstanceGroupManagerAutoHealingPoliciesArgs(
                        health_check="hc", initial_delay_sec=300),
                    update_policy=compute.InstanceGroupManagerUpdatePolicyArgs(
                        type="PROACTIVE", minimal_action="REPLACE", max_unavailable_fixed=0, max_surge_fixed=1)),
        "secret-reader": dict(secret_id="c-etcd-ca", role="roles/secretmanager.secretAccessor",
                              member=f"serviceAccount:{CP_SA}"),
        "cp-role": dict(project="example-project", role="projects/example-project/roles/cfcr_c_ab12",
                        member=f"serviceAccount:{CP_SA}"),
    }
    if change is not None:
        change(args)
    for name, kwargs in args.items():
        if name.startswith("fw-"):
            compute.Firewall(f"c-{name}", **kwargs)
    disk = compute.Disk("c-cp-0-etcd", **args["etcd-disk"])
    etcd = compute.InstanceAttachedDiskArgs(source=disk.self_link, device_name="etcd")
    compute.Instance("c-cp-0", attached_disks=[etcd], **args["cp"])
    template = compute.InstanceTemplate("c-general", **args["template"])
    if "region" in args["mig"]:
        regional = {k: v for k, v in args["mig"].items() if k != "zone"}
        compute.RegionInstanceGroupManager("c-general-z0", versions=[compute.RegionInstanceGroupManagerVersionArgs(
            instance_template=template.self_link_unique)], **regional)
    else:
        compute.InstanceGroupManager("c-general-z0", versions=[compute.InstanceGroupManagerVersionArgs(
            instance_template=template.self_link_unique)], **args["mig"])
    secretmanager.SecretIamMember("c-etcd-ca-reader", **args["secret-reader"])
    projects.IAMMember("c-cp-role", **args["cp-role"])


def _pack(mocks: MockRecording, change: Change | None = None) -> PackReport:
    run_program(lambda: _cluster(change))
    return run_pack(mocks.resources, stack="gcp-test")


def test_the_hardened_gcp_resources_pass_the_whole_pack(pulumi_mocks: MockRecording) -> None:
    report = _pack(pulumi_mocks)
    assert report.violations == [], report.format()
    types = {r.type for r in pulumi_mocks.resources}
    assert {t.GCP_FIREWALL, t.GCP_DISK, t.GCP_INSTANCE, t.GCP_INSTANCE_TEMPLATE, t.GCP_IGM,
            t.GCP_SECRET_IAM_MEMBER, t.GCP_PROJECT_IAM_MEMBER} <= types


def _set(name: str, **kwargs: Any) -> Change:
    return lambda args: args[name].update(kwargs)


def _metadata(name: str, **entries: Any) -> Change:
    def change(args: dict[str, Kwargs]) -> None:
        args[name]["metadata"] = {**args[name]["metadata"], **entries}
    return change


def _drop_metadata(name: str, key: str) -> Change:
    def change(args: dict[str, Kwargs]) -> None:
        args[name]["metadata"] = {k: v for k, v in args[name]["metadata"].items() if k != key}
    return change


def _firewall(**kwargs: Any) -> Change:
    return lambda args: args.update({"fw-extra": dict(network="c", **kwargs)})


def _tcp(*ports: str) -> list[compute.FirewallAllowArgs]:
    return [compute.FirewallAllowArgs(protocol="tcp", ports=list(ports))]


KUBECONFIG = ("apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n    client-certificate-data: "
              + b64("cert") + "\n    client-key-data: " + b64(PEM) + "\n")

WEAKENINGS: dict[str, tuple[Change, str, str]] = {
    # name: (change, the one policy that reports it, a fragment of its message)
    "ssh from the internet": (_firewall(allows=_tcp("22"), source_ranges=["0.0.0.0/0"], target_service_accounts=[CP_SA]),
                              "no-ssh-from-internet", "SSH (port 22) is open to 0.0.0.0/0"),
    "rdp from the internet": (_firewall(allows=_tcp("3389"), source_ranges=["::/0"], target_service_accounts=[CP_SA]),
                              "no-ssh-from-internet", "RDP (port 3389)"),
    "nodeports from the internet": (_firewall(allows=_tcp("30000-32767"), source_ranges=["0.0.0.0/0"],
                                              target_service_accounts=[WORKER_SA]),
                                    "no-world-ingress", "30000-32767 open to 0.0.0.0/0"),
    "a rule on every instance": (_firewall(allows=_tcp("10256"), source_ranges=["35.191.0.0/16"]),
                                 "gcp-firewall-targets", "on every instance of the network"),
    "vTPM off": (_set("cp", shielded_instance_config=compute.InstanceShieldedInstanceConfigArgs(
        enable_secure_boot=True, enable_vtpm=False, enable_integrity_monitoring=True)),
        "verified-boot", "enableVtpm is False"),
    "no shielded config on the template": (_set("template", shielded_instance_config=None),
                                           "verified-boot", "Secure Boot is off"),
    "project ssh keys allowed": (_drop_metadata("cp", "block-project-ssh-keys"),
                                 "instance-metadata-locked-down", "'block-project-ssh-keys' is None"),
    "instance ssh keys": (_metadata("template", **{"ssh-keys": "ubuntu:ssh-ed25519 AAAA"}),
                          "instance-metadata-locked-down", "metadata has 'ssh-keys'"),
    "serial port on": (_metadata("cp", **{"serial-port-enable": "TRUE"}),
                       "instance-metadata-locked-down", "serial console"),
    "a public IP": (_set("cp", network_interfaces=[compute.InstanceNetworkInterfaceArgs(
        subnetwork="c-nodes", access_configs=[compute.InstanceNetworkInterfaceAccessConfigArgs()])]),
        "no-public-ip", "networkInterfaces[0].accessConfigs"),
    "a public IP on the template": (_set("template", network_interfaces=[compute.InstanceTemplateNetworkInterfaceArgs(
        subnetwork="c-nodes", access_configs=[compute.InstanceTemplateNetworkInterfaceAccessConfigArgs(
            network_tier="PREMIUM")])]), "no-public-ip", "external address"),
    "a key in the startup script": (_metadata("cp", **{"startup-script": "#!/bin/sh\ncat <<EOF\n" + PEM + "EOF\n"}),
                                    "no-key-material-in-user-data", "metadata.startup-script contains a PEM"),
    "a kubelet key in kube-env": (_metadata("template", **{"kube-env": "KUBELET_KEY: " + b64(PEM) + "\n"}),
                                  "no-key-material-in-user-data", "base64-encoded PEM private key"),
    "a token in gzipped user-data": (_metadata("template", **{"user-data": b64(gzip.compress(
        b"#!/bin/sh\nkubeadm join --token abcdef.0123456789abcdef\n"))}),
        "no-key-material-in-user-data", "bootstrap token"),
    "an admin kubeconfig in metadata": (_metadata("cp", kubeconfig=KUBECONFIG),
                                        "no-key-material-in-user-data", "client-key-data"),
    "etcd on pd-standard": (_set("etcd-disk", type="pd-standard"), "etcd-disk-ssd", "etcd's disk is pd-standard"),
    "etcd on the default type": (_set("etcd-disk", type=None), "etcd-disk-ssd", "etcd's disk is pd-standard"),
    "a disk left on Google's key": (_set("etcd-disk", disk_encryption_key=compute.DiskDiskEncryptionKeyArgs(
        kms_key_self_link=KEY)), "gcp-disk-keys", "bootDisk.kmsKeySelfLink is unset"),
    "no auto-healing": (_set("mig", auto_healing_policies=None), "node-pools-self-heal", "no health check"),
    "an update that takes capacity": (_set("mig", update_policy=compute.InstanceGroupManagerUpdatePolicyArgs(
        type="PROACTIVE", minimal_action="REPLACE", max_unavailable_fixed=1, max_surge_fixed=1)),
        "node-pools-roll-without-capacity-loss", "maxUnavailable is 1"),
    "no update policy": (_set("mig", update_policy=None), "node-pools-roll-without-capacity-loss",
                         "updatePolicy is not set"),
    "a regional group": (_set("mig", region="europe-west4", update_policy=(
        compute.RegionInstanceGroupManagerUpdatePolicyArgs(type="PROACTIVE", minimal_action="REPLACE",
                                                           max_unavailable_fixed=0, max_surge_fixed=3)),
        auto_healing_policies=compute.RegionInstanceGroupManagerAutoHealingPoliciesArgs(
            health_check="hc", initial_delay_sec=300)),
        "node-pools-zonal", "zonal groups only"),
    "a public secret": (_set("secret-reader", member="allUsers"), "secret-access-least-privilege",
                        "anyone with a Google account"),
    "a secret read by a person": (_set("secret-reader", member="user:ops@example.com"),
                                  "secret-access-least-privilege", "is not a service account"),
    "a secret admin": (_set("secret-reader", role="roles/secretmanager.admin"), "secret-access-least-privilege",
                       "role roles/secretmanager.admin"),
    "a version manager on a key's secret": (_set("secret-reader", role="roles/secretmanager.secretVersionManager"),
                                            "secret-access-least-privilege", "on the join token's secret"),
    "an editor service account": (_set("cp-role", role="roles/editor"), "no-basic-project-roles",
                                  "gets roles/editor on the project"),
}


@pytest.mark.parametrize("case", list(WEAKENINGS))
def test_each_weakening_is_reported_by_its_policy(pulumi_mocks: MockRecording, case: str) -> None:
    change, owner, fragment = WEAKENINGS[case]
    report = _pack(pulumi_mocks, change)
    assert {v.policy for v in report.violations} == {owner}, report.format()
    assert any(fragment in v.message for v in report.violations), report.format()


def test_property_names_are_the_engines(pulumi_mocks: MockRecording) -> None:
    """The names the policies read are the camelCase inputs pulumi-gcp registers."""
    run_program(lambda: _cluster(None))
    cp = pulumi_mocks.get("c-cp-0", t.GCP_INSTANCE).inputs
    assert set(cp["shieldedInstanceConfig"]) == {"enableSecureBoot", "enableVtpm", "enableIntegrityMonitoring"}
    assert "networkInterfaces" in cp and "attachedDisks" in cp and "metadata" in cp
    assert cp["attachedDisks"][0]["deviceName"] == "etcd"
    mig = pulumi_mocks.get("c-general-z0", t.GCP_IGM).inputs
    assert mig["updatePolicy"]["maxUnavailableFixed"] == 0 and mig["autoHealingPolicies"]["healthCheck"] == "hc"
    fw = pulumi_mocks.get("c-fw-api", t.GCP_FIREWALL).inputs
    assert {"allows", "sourceRanges", "targetServiceAccounts"} <= set(fw)
    assert pulumi_mocks.get("c-general", t.GCP_INSTANCE_TEMPLATE).inputs["disks"][0]["diskType"] == "pd-balanced"
    assert gcp.__name__ == "pulumi_gcp"


# ----------------------------------------------------------------------------- rules on constructed props


@pytest.mark.parametrize(("props", "found"), [
    ({"allows": [{"protocol": "tcp", "ports": ["10250"]}], "sourceRanges": ["10.0.0.0/8"]}, False),
    ({"allows": [{"protocol": "tcp", "ports": ["10250"]}], "sourceServiceAccounts": [CP_SA]}, False),
    ({"allows": [{"protocol": "tcp", "ports": ["6443"]}], "sourceRanges": ["203.0.113.0/24"],
      "targetTags": ["cp"]}, False),
    ({"direction": "EGRESS", "allows": [{"protocol": "all"}], "destinationRanges": ["0.0.0.0/0"]}, False),
    ({"allows": [{"protocol": "tcp", "ports": ["6443"]}], "sourceRanges": ["203.0.113.0/24"]}, True),
    ({"allows": [{"protocol": "tcp", "ports": ["443"]}]}, True),  # no source: 0.0.0.0/0
])
def test_firewall_rules_from_outside_name_their_targets(props: dict[str, Any], found: bool) -> None:
    assert bool(check("gcp-firewall-targets", t.GCP_FIREWALL, props)) is found


def test_google_probe_ranges_reach_the_api_when_the_allowed_cidrs_are_set() -> None:
    props = {"allows": [{"protocol": "tcp", "ports": ["6443"]}], "targetServiceAccounts": [CP_SA],
             "sourceRanges": ["203.0.113.0/24", "35.191.0.0/16", "130.211.0.0/22"]}
    config = {"apiAllowedCidrs": ["203.0.113.0/24"]}
    assert check("api-allowed-cidrs", t.GCP_FIREWALL, props, config) == []
    wider = {**props, "sourceRanges": ["198.51.100.0/24"]}
    assert "not inside the allowed CIDRs" in check("api-allowed-cidrs", t.GCP_FIREWALL, wider, config)[0]
    # the probe ranges count only on GCP firewalls
    aws = {"ingress": [{"protocol": "tcp", "fromPort": 6443, "toPort": 6443, "cidrBlocks": ["35.191.0.0/16"]}]}
    assert check("api-allowed-cidrs", t.AWS_SECURITY_GROUP, aws, config) != []


def test_rdp_and_ssh_from_a_configured_bastion_pass() -> None:
    props = {"allows": [{"protocol": "tcp", "ports": ["22", "3389"]}], "sourceRanges": ["35.235.240.0/20"],
             "targetServiceAccounts": [CP_SA]}
    assert check("no-ssh-from-internet", t.GCP_FIREWALL, props, {"sshAllowedCidrs": ["35.235.240.0/20"]}) == []
    assert len(check("no-ssh-from-internet", t.GCP_FIREWALL, props)) == 1


@pytest.mark.parametrize("type_token", [t.GCP_INSTANCE, t.GCP_INSTANCE_TEMPLATE, t.GCP_REGION_INSTANCE_TEMPLATE])
def test_shielded_vm_needs_all_three_explicitly(type_token: str) -> None:
    on = {"enableSecureBoot": True, "enableVtpm": True, "enableIntegrityMonitoring": "true"}
    assert check("verified-boot", type_token, {"shieldedInstanceConfig": on}) == []
    for key in on:
        found = check("verified-boot", type_token, {"shieldedInstanceConfig": {k: v for k, v in on.items() if k != key}})
        assert found == [f"shieldedInstanceConfig.{key} is None; it must be true"]


@pytest.mark.parametrize("type_token", [t.GCP_INSTANCE, t.GCP_REGION_INSTANCE_TEMPLATE])
def test_gcp_metadata(type_token: str) -> None:
    good = {"metadata": {"block-project-ssh-keys": True, "serial-port-enable": "false"}}
    assert check("instance-metadata-locked-down", type_token, good) == []
    for bad in ({"sshKeys": "u:ssh-rsa AAAA"}, {"block-project-ssh-keys": "FALSE"}, {"serial-port-enable": True}):
        assert len(check("instance-metadata-locked-down", type_token, {"metadata": {**good["metadata"], **bad}})) == 1
    strict = {"gcpRequiredMetadata": ["block-project-ssh-keys", "enable-oslogin"]}
    assert "'enable-oslogin'" in check("instance-metadata-locked-down", type_token, good, strict)[0]


def test_rollout_policy_edge_cases() -> None:
    ok = {"updatePolicy": {"type": "PROACTIVE", "maxUnavailableFixed": 0.0, "maxSurgeFixed": 3.0}}
    assert check("node-pools-roll-without-capacity-loss", t.GCP_RIGM, ok) == []
    assert check("node-pools-roll-without-capacity-loss", t.GCP_IGM, {"updatePolicy": {
        "maxUnavailableFixed": 0, "maxSurgePercent": 20}}) == []
    assert "maxUnavailable is 10%" in check("node-pools-roll-without-capacity-loss", t.GCP_IGM, {"updatePolicy": {
        "maxUnavailablePercent": 10, "maxSurgeFixed": 1}})[0]
    assert "surges no instance" in check("node-pools-roll-without-capacity-loss", t.GCP_IGM, {"updatePolicy": {
        "maxUnavailableFixed": 0, "maxSurgeFixed": 0}})[0]
    assert "RECREATE" in check("node-pools-roll-without-capacity-loss", t.GCP_IGM, {"updatePolicy": {
        "maxUnavailableFixed": 0, "replacementMethod": "RECREATE"}})[0]


def test_a_zonal_group_takes_its_zone_from_the_provider() -> None:
    assert check("node-pools-zonal", t.GCP_IGM, {}, provider_props={"zone": "europe-west4-b"}) == []
    assert check("node-pools-zonal", t.GCP_IGM, {}) == ["zone is not set (neither on the group nor on its provider)"]


def test_etcd_disks_found_by_device_name_through_dependencies_or_on_templates() -> None:
    disk = res(t.GCP_DISK, "members-disk-a", {"type": "projects/p/zones/z/diskTypes/pd-balanced"})
    other = res(t.GCP_DISK, "scratch", {"type": "pd-standard"})
    inst = res(t.GCP_INSTANCE, "cp", {"attachedDisks": [{"deviceName": "etcd", "source": "x"}]})
    inst.property_dependencies = {"attachedDisks": [disk]}
    found = stack_check("etcd-disk-ssd", [disk, other, inst])
    assert found == [(found[0][0], disk.urn)] and "pd-balanced" in found[0][0]
    by_name = res(t.GCP_INSTANCE, "cp2", {"attachedDisks": [{"deviceName": "data", "source": "a"},
                                                           {"deviceName": "etcd", "source": "zones/z/disks/b"}]})
    named = res(t.GCP_DISK, "b", {"name": "b", "type": "pd-standard"})
    assert [urn for _, urn in stack_check("etcd-disk-ssd", [named, by_name])] == [named.urn]
    tpl = res(t.GCP_INSTANCE_TEMPLATE, "cp-tpl", {"disks": [{"boot": True, "diskType": "pd-standard"},
                                                          {"deviceName": "etcd", "diskType": "pd-standard"}]})
    assert "disks[1] (etcd) is pd-standard" in stack_check("etcd-disk-ssd", [tpl])[0][0]
    assert stack_check("etcd-disk-ssd", [tpl], {"etcdDiskTypes": ["pd-standard"]}) == []


def test_the_stacks_disk_key_comes_from_the_bootstrap_summary() -> None:
    summary = res(t.BOOTSTRAP, "c", {"cloud": "gcp", "diskKmsKey": KEY})
    disk = res(t.GCP_DISK, "c-cp-0-etcd", {"diskEncryptionKey": {"kmsKeySelfLink": KEY + "/cryptoKeyVersions/3"}})
    tpl = res(t.GCP_INSTANCE_TEMPLATE, "t", {"disks": [{"diskEncryptionKey": {"kmsKeySelfLink": KEY}},
                                                       {"source": "an-existing-disk"}]})
    assert stack_check("gcp-disk-keys", [summary, disk, tpl]) == []
    inst = res(t.GCP_INSTANCE, "c-cp-0", {"bootDisk": {"initializeParams": {"type": "pd-balanced"}}})
    (message, urn), = stack_check("gcp-disk-keys", [summary, disk, tpl, inst])
    assert urn == inst.urn and "bootDisk.kmsKeySelfLink is unset; the stack's key (cfcr:gcp.diskKmsKey)" in message
    other = res(t.GCP_DISK, "d", {"diskEncryptionKey": {"kmsKeySelfLink": "projects/x/keyRings/r/cryptoKeys/other"}})
    assert [urn for _, urn in stack_check("gcp-disk-keys", [summary, other])] == [other.urn]
    # without a configured key: all or none
    assert stack_check("gcp-disk-keys", [inst, res(t.GCP_DISK, "plain", {})]) == []
    assert [urn for _, urn in stack_check("gcp-disk-keys", [disk, inst])] == [inst.urn]


@pytest.mark.parametrize(("type_token", "props", "found"), [
    (t.GCP_SECRET_IAM_BINDING, {"role": "roles/secretmanager.secretAccessor",
                                "members": [f"serviceAccount:{CP_SA}", "allAuthenticatedUsers"]}, 1),
    (t.GCP_SECRET_IAM_POLICY, {"policyData": '{"bindings": [{"role": "roles/secretmanager.secretAccessor", '
                                             f'"members": ["serviceAccount:{CP_SA}"]}}]}}'}, 0),
    (t.GCP_SECRET_IAM_POLICY, {"policyData": '{"bindings": [{"role": "roles/secretmanager.viewer", '
                                             '"members": ["group:ops@example.com"]}]}'}, 2),
    (t.GCP_SECRET_IAM_POLICY, {}, 0),  # not known yet
])
def test_secret_access_on_bindings_and_policies(type_token: str, props: dict[str, Any], found: int) -> None:
    assert len(check("secret-access-least-privilege", type_token, props)) == found


def test_the_join_tokens_secret_may_also_grant_its_rotation() -> None:
    manager = {"secretId": "c-bootstrap-token", "role": "roles/secretmanager.secretVersionManager",
               "member": f"serviceAccount:{CP_SA}"}
    assert check("secret-access-least-privilege", t.GCP_SECRET_IAM_MEMBER, manager) == []
    assert len(check("secret-access-least-privilege", t.GCP_SECRET_IAM_MEMBER, {**manager, "secretId": "c-ca-key"})) == 1
    assert len(check("secret-access-least-privilege", t.GCP_SECRET_IAM_MEMBER, {**manager, "member": "user:a@b.c"})) == 1
    assert len(check("secret-access-least-privilege", t.GCP_SECRET_IAM_MEMBER, manager,
                     {"joinTokenRotationRoles": []})) == 1


def test_project_roles_on_bindings_and_policies() -> None:
    assert check("no-basic-project-roles", t.GCP_PROJECT_IAM_BINDING,
                 {"role": "roles/compute.viewer", "members": [f"serviceAccount:{WORKER_SA}"]}) == []
    assert len(check("no-basic-project-roles", t.GCP_PROJECT_IAM_BINDING,
                     {"role": "roles/owner", "members": [f"serviceAccount:{CP_SA}", "allUsers"]})) == 3
    policy_data = '{"bindings": [{"role": "roles/editor", "members": ["serviceAccount:x@p.iam.gserviceaccount.com"]}]}'
    assert "roles/editor" in check("no-basic-project-roles", t.GCP_PROJECT_IAM_POLICY, {"policyData": policy_data})[0]
    assert check("no-basic-project-roles", t.GCP_PROJECT_IAM_MEMBER, {"role": "roles/editor", "member": "user:a"},
                 {"forbiddenRoles": ["roles/owner"]}) == []


# ----------------------------------------------------------------------------- the GCP stacks


def test_the_gcp_policies_reach_the_rendered_gcp_stack() -> None:
    """Over gcp-stable's real render, stricter settings make each GCP policy report exactly the
    resources it is about: the pack does see them (and passes them at its defaults)."""
    from cfcr.policy.runner import check_stack
    from cfcr.render import render_stack

    rendered = render_stack("gcp-stable", None)
    (role,) = [r for r in rendered.resources if r.type == "gcp:projects/iAMCustomRole:IAMCustomRole"]
    custom_role = str(role.outputs["name"])
    assert custom_role.startswith("projects/example-project/roles/cfcr_") and not custom_role.endswith("_None")
    accessors = [r for r in rendered.resources if r.type == "gcp:secretmanager/secretIamMember:SecretIamMember"]
    strict = {
        "etcd-disk-ssd": {"etcdDiskTypes": ["pd-extreme"]},
        "instance-metadata-locked-down": {"gcpRequiredMetadata": ["block-project-ssh-keys", "enable-oslogin"]},
        "secret-access-least-privilege": {"allowedRoles": ["roles/secretmanager.viewer"], "joinTokenRotationRoles": []},
        "no-basic-project-roles": {"forbiddenRoles": [custom_role]},
        "disks-encrypted": {"gcpRequireCustomerManagedKeys": True},
    }
    report = check_stack("gcp-stable", policy_config=strict)
    by_policy: dict[str, set[str]] = {}
    for v in report.mandatory:
        by_policy.setdefault(v.policy, set()).add(v.resource)
    etcd = {f"gcp:compute/disk:Disk::cfcr-gcp-stable-cp-{i}-etcd" for i in range(3)}
    machines = {f"gcp:compute/instance:Instance::cfcr-gcp-stable-cp-{i}" for i in range(3)}
    template = {"gcp:compute/instanceTemplate:InstanceTemplate::cfcr-gcp-stable-general"}
    assert by_policy.pop("etcd-disk-ssd") == etcd
    assert by_policy.pop("instance-metadata-locked-down") == machines | template
    assert by_policy.pop("disks-encrypted") == etcd | machines | template
    assert len(by_policy.pop("secret-access-least-privilege")) == len(accessors) > 20
    assert len(by_policy.pop("no-basic-project-roles")) == 3
    assert by_policy == {}, report.format()


def test_a_stack_with_a_disk_key_passes_and_its_summary_names_the_key() -> None:
    from cfcr.config import read_stack_config
    from cfcr.policy.runner import check_stack
    from cfcr.render import render_stack

    key = "projects/example-project/locations/europe-west4/keyRings/r/cryptoKeys/k"
    config = {**read_stack_config("gcp-stable"), "cfcr:gcp": {"diskKmsKey": key}}
    assert check_stack("gcp-stable", stack_config=config).violations == []
    rendered = render_stack("gcp-stable", None, config=config)
    (summary,) = [r for r in rendered.resources if r.type == t.BOOTSTRAP]
    assert summary.inputs["diskKmsKey"] == key
