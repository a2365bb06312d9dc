"""Every policy, both ways, on constructed resources of each cloud it covers: ``validate()`` is
called with ``ResourceValidationArgs`` / ``StackValidationArgs`` as the engine builds them."""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from cfcr import channels
from cfcr.policy import POLICIES, policy
from cfcr.policy import types as t
from tests.support.policy import b64, check, res, stack_check


# ----------------------------------------------------------------------------- the registry


def test_every_policy_has_a_schema_with_defaults_and_a_known_cloud() -> None:
    assert len({p.name for p in POLICIES}) == len(POLICIES) >= 18
    for p in POLICIES:
        assert p.clouds and set(p.clouds) <= {"aws", "gcp", "azure"}
        assert p.resource_types
        for s in p.settings:
            assert "default" in s.schema and s.schema.get("description"), (p.name, s.name)
            assert p.config_schema is not None and s.name in p.config_schema.properties


# ----------------------------------------------------------------------------- cluster shape


def summary(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "cloud": "aws", "kubernetesVersion": channels.CHANNELS["stable"], "channel": "stable",
        "controlPlaneCount": 3.0, "cni": "calico", "production": True,
        "nodePools": [{"name": "general", "minSize": 1.0, "maxSize": 6.0, "spot": False}],
        "auditLogging": True, "secretsEncryption": True, "tags": {"owner": "a", "cost-centre": "b"},
    }
    base.update(over)
    return base


def test_kubernetes_version_inside_the_window() -> None:
    assert check("kubernetes-version", t.BOOTSTRAP, summary()) == []
    assert check("kubernetes-version", t.BOOTSTRAP, summary(kubernetesVersion=channels.CHANNELS["edge"])) == []
    assert "not a release" in check("kubernetes-version", t.BOOTSTRAP, summary(kubernetesVersion="1.20.0"))[0]
    oldest = min(channels.known_versions(), key=channels.parse_version)
    assert check("kubernetes-version", t.BOOTSTRAP, summary(kubernetesVersion=oldest)) == []
    assert "outside the supported window" in check(
        "kubernetes-version", t.BOOTSTRAP, summary(kubernetesVersion=oldest), {"minorsBehindStable": 0})[0]
    assert "does not allow edge" in check("kubernetes-version", t.BOOTSTRAP,
                                          summary(kubernetesVersion=channels.CHANNELS["edge"]), {"allowEdge": False})[0]


@pytest.mark.parametrize(("count", "production", "expected"), [
    (3.0, True, []), (5, True, []), (1, False, []),
    (1, True, ["at least 3"]), (4, False, ["odd number"]), (2, True, ["odd number", "at least 3"]),
])
def test_control_plane_count(count: float, production: bool, expected: list[str]) -> None:
    found = check("control-plane-count", t.BOOTSTRAP, summary(controlPlaneCount=count, production=production))
    assert len(found) == len(expected)
    for message, fragment in zip(found, expected, strict=True):
        assert fragment in message


def test_cni_without_network_policy_is_reported() -> None:
    assert check("cni-network-policy", t.BOOTSTRAP, summary(cni="cilium")) == []
    assert "flannel" in check("cni-network-policy", t.BOOTSTRAP, summary(cni="flannel"))[0]
    assert policy("cni-network-policy").enforcement_level is not None
    assert policy("cni-network-policy").enforcement_level.value == "advisory"  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- network

AWS_SG_API_OK = {"ingress": [{"protocol": "tcp", "fromPort": 6443, "toPort": 6443,
                              "cidrBlocks": ["10.0.0.0/16", "203.0.113.0/24"]}]}
AWS_SG_API_WORLD = {"ingress": [{"protocol": "tcp", "fromPort": 6443, "toPort": 6443, "cidrBlocks": ["0.0.0.0/0"]}]}


@pytest.mark.parametrize(("type_token", "good", "bad"), [
    (t.AWS_SECURITY_GROUP, AWS_SG_API_OK, AWS_SG_API_WORLD),
    (t.AWS_SG_INGRESS_RULE, {"ipProtocol": "tcp", "fromPort": 6443, "toPort": 6443, "cidrIpv4": "203.0.113.0/24"},
     {"ipProtocol": "tcp", "fromPort": 6443, "toPort": 6443, "cidrIpv6": "::/0"}),
    (t.AWS_SG_RULE, {"type": "ingress", "protocol": "tcp", "fromPort": 443, "toPort": 6443,
                     "cidrBlocks": ["10.1.0.0/16"]},
     {"type": "ingress", "protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["198.51.100.0/24"]}),
    (t.GCP_FIREWALL, {"allows": [{"protocol": "tcp", "ports": ["6443"]}], "sourceRanges": ["203.0.113.0/24"]},
     {"allows": [{"protocol": "tcp", "ports": ["6443"]}]}),  # no source: GCP means 0.0.0.0/0
    (t.AZ_NSG, {"securityRules": [{"name": "api", "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
                                   "sourceAddressPrefix": "AzureLoadBalancer", "destinationPortRange": "6443"}]},
     {"securityRules": [{"name": "api", "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
                         "sourceAddressPrefix": "Internet", "destinationPortRange": "6443"}]}),
    (t.AZ_SECURITY_RULE, {"direction": "Inbound", "access": "Allow", "protocol": "Tcp",
                          "sourceAddressPrefixes": ["203.0.113.7/32"], "destinationPortRanges": ["6443"]},
     {"direction": "Inbound", "access": "Allow", "protocol": "*", "sourceAddressPrefix": "*",
      "destinationPortRange": "*"}),
])
def test_api_only_from_allowed_cidrs(type_token: str, good: dict[str, Any], bad: dict[str, Any]) -> None:
    config = {"apiAllowedCidrs": ["203.0.113.0/24"]}
    assert check("api-allowed-cidrs", type_token, good, config) == []
    found = check("api-allowed-cidrs", type_token, bad, config)
    assert found and "API" in found[0]


def test_api_cidr_outside_the_allowed_list_is_reported() -> None:
    assert check("api-allowed-cidrs", t.AWS_SECURITY_GROUP, AWS_SG_API_OK) == []  # no list: only the world fails
    found = check("api-allowed-cidrs", t.AWS_SECURITY_GROUP, AWS_SG_API_OK, {"apiAllowedCidrs": ["198.51.100.0/24"]})
    assert found == ["ingress[0]: the API (port 6443) is open to 203.0.113.0/24, which is not inside the allowed "
                     "CIDRs (198.51.100.0/24)"]


def test_denied_egress_and_icmp_rules_are_not_ingress() -> None:
    assert check("no-world-ingress", t.AZ_SECURITY_RULE, {"direction": "Inbound", "access": "Deny",
                                                           "sourceAddressPrefix": "*"}) == []
    assert check("no-world-ingress", t.GCP_FIREWALL, {"direction": "EGRESS", "allows": [{"protocol": "all"}]}) == []
    assert check("no-world-ingress", t.AWS_SG_RULE, {"type": "egress", "protocol": "-1",
                                                      "cidrBlocks": ["0.0.0.0/0"]}) == []
    assert check("no-world-ingress", t.AWS_SECURITY_GROUP, {"ingress": [{"protocol": "icmp", "fromPort": -1,
                                                                         "toPort": -1, "cidrBlocks": ["0.0.0.0/0"]}]}) == []


@pytest.mark.parametrize(("type_token", "good", "bad"), [
    (t.AWS_SECURITY_GROUP, {"ingress": [{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["10.0.0.0/8"]}]},
     {"ingress": [{"protocol": "tcp", "fromPort": 20, "toPort": 30, "cidrBlocks": ["198.51.100.0/24"]}]}),
    (t.AWS_SG_INGRESS_RULE, {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": "192.168.0.0/24"},
     {"ipProtocol": "-1", "cidrIpv4": "0.0.0.0/0"}),
    (t.GCP_FIREWALL, {"allows": [{"protocol": "tcp", "ports": ["22"]}], "sourceRanges": ["35.235.240.0/20"]},
     {"allows": [{"protocol": "tcp", "ports": ["22"]}], "sourceRanges": ["0.0.0.0/0"]}),
    (t.AZ_NSG, {"securityRules": [{"direction": "Inbound", "access": "Allow", "protocol": "Tcp",
                                   "sourceAddressPrefix": "10.0.0.0/16", "destinationPortRange": "22"}]},
     {"securityRules": [{"direction": "Inbound", "access": "Allow", "protocol": "Tcp",
                         "sourceAddressPrefix": "Internet", "destinationPortRange": "22"}]}),
])
def test_no_ssh_from_internet(type_token: str, good: dict[str, Any], bad: dict[str, Any]) -> None:
    config = {"sshAllowedCidrs": ["35.235.240.0/20"]}  # e.g. GCP's IAP range
    assert check("no-ssh-from-internet", type_token, good, config) == []
    assert "SSH" in check("no-ssh-from-internet", type_token, bad, config)[0]


@pytest.mark.parametrize(("type_token", "good", "bad"), [
    (t.AWS_SECURITY_GROUP, {"ingress": [{"protocol": "tcp", "fromPort": 10250, "toPort": 10250,
                                         "cidrBlocks": ["10.0.0.0/16"]}]},
     {"ingress": [{"protocol": "tcp", "fromPort": 30000, "toPort": 32767, "cidrBlocks": ["0.0.0.0/0"]}]}),
    (t.AWS_SG_RULE, {"type": "ingress", "protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]},
     {"type": "ingress", "protocol": "tcp", "fromPort": 80, "toPort": 80, "ipv6CidrBlocks": ["::/0"]}),
    (t.GCP_FIREWALL, {"allows": [{"protocol": "tcp"}], "sourceTags": ["node"]},
     {"allows": [{"protocol": "udp", "ports": ["8472"]}], "sourceRanges": ["0.0.0.0/0"]}),
    (t.AZ_SECURITY_RULE, {"direction": "Inbound", "access": "Allow", "protocol": "Tcp",
                          "sourceAddressPrefix": "VirtualNetwork", "destinationPortRange": "*"},
     {"direction": "Inbound", "access": "Allow", "protocol": "Tcp", "sourceAddressPrefix": "0.0.0.0/0",
      "destinationPortRange": "10250"}),
])
def test_no_world_ingress(type_token: str, good: dict[str, Any], bad: dict[str, Any]) -> None:
    config = {"allowedPublicPorts": [443]}
    assert check("no-world-ingress", type_token, good, config) == []
    assert "open to" in check("no-world-ingress", type_token, bad, config)[0]


def test_world_ingress_on_the_api_port_is_left_to_the_api_policy() -> None:
    assert check("no-world-ingress", t.AWS_SECURITY_GROUP, AWS_SG_API_WORLD) == []
    assert check("api-allowed-cidrs", t.AWS_SECURITY_GROUP, AWS_SG_API_WORLD) != []


ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"


@pytest.mark.parametrize(("props", "found"), [
    ({"vpcEndpointType": "Interface", "serviceName": "com.amazonaws.eu-west-1.ec2", "privateDnsEnabled": True}, None),
    ({"vpcEndpointType": "Gateway", "serviceName": "com.amazonaws.eu-west-1.s3"}, None),
    ({"serviceName": "com.amazonaws.eu-west-1.s3"}, None),  # the provider's default type: Gateway
    ({"vpcEndpointType": "Interface", "serviceName": "com.amazonaws.eu-west-1.ec2", "privateDnsEnabled": False},
     "interface endpoint for com.amazonaws.eu-west-1.ec2 has privateDnsEnabled false"),
    ({"vpcEndpointType": "Interface", "serviceName": "com.amazonaws.eu-west-1.sts"},
     "interface endpoint for com.amazonaws.eu-west-1.sts has privateDnsEnabled unset"),
])
def test_interface_endpoints_have_private_dns(props: dict[str, Any], found: str | None) -> None:
    """An interface endpoint without private DNS leaves the service's usual name on its public
    addresses: the check says so; a gateway endpoint has no DNS of its own."""
    messages = check("private-endpoints-private-dns", ENDPOINT, props)
    assert messages == ([] if found is None else [messages[0]]) and (found is None or found in messages[0])


def test_etcd_only_from_the_control_planes_own_group_aws() -> None:
    cp_sg = res(t.AWS_SECURITY_GROUP, "cp", {"ingress": [
        {"protocol": "tcp", "fromPort": 2379, "toPort": 2380, "self": True}]})
    same = res(t.AWS_SG_INGRESS_RULE, "etcd-peer", {"ipProtocol": "tcp", "fromPort": 2380, "toPort": 2380,
                                                     "securityGroupId": "sg-1", "referencedSecurityGroupId": "sg-2"})
    same.property_dependencies = {"securityGroupId": [cp_sg], "referencedSecurityGroupId": [cp_sg]}
    assert stack_check("etcd-control-plane-only", [cp_sg, same]) == []

    workers = res(t.AWS_SECURITY_GROUP, "workers", {})
    other = res(t.AWS_SG_RULE, "etcd-from-workers", {"type": "ingress", "protocol": "tcp", "fromPort": 2379,
                                                     "toPort": 2379, "securityGroupId": "sg-1",
                                                     "sourceSecurityGroupId": "sg-9"})
    other.property_dependencies = {"securityGroupId": [cp_sg], "sourceSecurityGroupId": [workers]}
    cidr = res(t.AWS_SECURITY_GROUP, "vpc-wide", {"ingress": [
        {"protocol": "tcp", "fromPort": 2379, "toPort": 2379, "cidrBlocks": ["10.0.0.0/16"]}]})
    found = stack_check("etcd-control-plane-only", [cp_sg, workers, other, cidr])
    assert {urn for _, urn in found} == {other.urn, cidr.urn}
    assert stack_check("etcd-control-plane-only", [cidr], {"etcdAllowedCidrs": ["10.0.0.0/16"]}) == []


def test_etcd_only_from_the_control_plane_gcp_and_azure() -> None:
    good_gcp = res(t.GCP_FIREWALL, "etcd", {"allows": [{"protocol": "tcp", "ports": ["2379-2380"]}],
                                            "sourceTags": ["cp"], "targetTags": ["cp"]})
    bad_gcp = res(t.GCP_FIREWALL, "etcd-nodes", {"allows": [{"protocol": "tcp", "ports": ["2379"]}],
                                                 "sourceTags": ["node"], "targetTags": ["cp"]})
    asg = {"id": "/subscriptions/x/applicationSecurityGroups/cp"}
    good_az = res(t.AZ_SECURITY_RULE, "etcd", {"direction": "Inbound", "access": "Allow", "protocol": "Tcp",
                                               "destinationPortRange": "2379-2380",
                                               "sourceApplicationSecurityGroups": [asg],
                                               "destinationApplicationSecurityGroups": [asg]})
    bad_az = res(t.AZ_NSG, "nsg", {"securityRules": [{"direction": "Inbound", "access": "Allow", "protocol": "Tcp",
                                                      "sourceAddressPrefix": "VirtualNetwork",
                                                      "destinationPortRange": "2379"}]})
    found = stack_check("etcd-control-plane-only", [good_gcp, bad_gcp, good_az, bad_az])
    assert {urn for _, urn in found} == {bad_gcp.urn, bad_az.urn}


# ----------------------------------------------------------------------------- machines

AWS_MD_OK = {"metadataOptions": {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1}}
GCP_MD_OK = {"metadata": {"block-project-ssh-keys": "true", "disable-legacy-endpoints": True}}
AZ_SEC = {"securityType": "TrustedLaunch", "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True},
          "encryptionAtHost": True, "proxyAgentSettings": {"enabled": True, "mode": "Enforce"}}


@pytest.mark.parametrize(("type_token", "good", "bad", "config"), [
    (t.AWS_INSTANCE, AWS_MD_OK, {"metadataOptions": {"httpTokens": "optional", "httpPutResponseHopLimit": 2}}, None),
    (t.AWS_LAUNCH_TEMPLATE, AWS_MD_OK, {}, None),
    (t.GCP_INSTANCE, GCP_MD_OK, {"metadata": {"block-project-ssh-keys": "false"}}, None),
    (t.GCP_INSTANCE_TEMPLATE, GCP_MD_OK, {"metadata": {**GCP_MD_OK["metadata"], "serial-port-enable": "TRUE"}}, None),
    (t.AZ_VM, {"securityProfile": AZ_SEC}, {"securityProfile": {**AZ_SEC, "proxyAgentSettings": {"enabled": False}}},
     {"azureRequireProxyAgent": True}),
    (t.AZ_VMSS, {"virtualMachineProfile": {"securityProfile": AZ_SEC}},
     {"virtualMachineProfile": {"securityProfile": {**AZ_SEC, "proxyAgentSettings": {"enabled": True, "mode": "Audit"}}}},
     {"azureRequireProxyAgent": True}),
])
def test_instance_metadata_locked_down(type_token: str, good: dict[str, Any], bad: dict[str, Any],
                                       config: dict[str, Any] | None) -> None:
    assert check("instance-metadata-locked-down", type_token, good, config) == []
    assert check("instance-metadata-locked-down", type_token, bad, config) != []


def test_aws_imds_messages_name_both_settings() -> None:
    found = check("instance-metadata-locked-down", t.AWS_INSTANCE,
                  {"metadataOptions": {"httpTokens": "optional", "httpPutResponseHopLimit": 2}})
    assert len(found) == 2 and "httpTokens" in found[0] and "HopLimit is 2" in found[1]
    assert check("instance-metadata-locked-down", t.AWS_INSTANCE, {"metadataOptions": {"httpEndpoint": "disabled"}}) == []


@pytest.mark.parametrize(("type_token", "good", "bad"), [
    (t.GCP_INSTANCE, {"shieldedInstanceConfig": {"enableSecureBoot": True, "enableVtpm": "true",
                                                 "enableIntegrityMonitoring": True}}, {}),
    (t.GCP_INSTANCE_TEMPLATE, {"shieldedInstanceConfig": {"enableSecureBoot": True, "enableVtpm": True,
                                                          "enableIntegrityMonitoring": True}},
     {"shieldedInstanceConfig": {"enableSecureBoot": True, "enableVtpm": False}}),
    (t.AZ_VM, {"securityProfile": AZ_SEC}, {"securityProfile": {"securityType": "Standard"}}),
    (t.AZ_VMSS, {"virtualMachineProfile": {"securityProfile": AZ_SEC}},
     {"virtualMachineProfile": {"securityProfile": {**AZ_SEC, "uefiSettings": {"vTpmEnabled": True}}}}),
])
def test_verified_boot(type_token: str, good: dict[str, Any], bad: dict[str, Any]) -> None:
    assert check("verified-boot", type_token, good) == []
    assert check("verified-boot", type_token, bad) != []


@pytest.mark.parametrize(("type_token", "good", "bad", "config"), [
    (t.AWS_INSTANCE, {"rootBlockDevice": {"encrypted": True}, "ebsBlockDevices": [{"encrypted": True}]},
     {"rootBlockDevice": {"encrypted": True}, "ebsBlockDevices": [{"encrypted": False}]}, None),
    (t.AWS_LAUNCH_TEMPLATE, {"blockDeviceMappings": [{"deviceName": "/dev/sda1", "ebs": {"encrypted": "true"}}]},
     {"blockDeviceMappings": []}, None),
    (t.AWS_LAUNCH_TEMPLATE, {}, {"blockDeviceMappings": [{"ebs": {"encrypted": "false"}}]},
     {"awsEncryptionByDefault": True}),
    (t.AWS_VOLUME, {"encrypted": True}, {"encrypted": False}, None),
    (t.GCP_DISK, {"diskEncryptionKey": {"kmsKeySelfLink": "projects/p/keys/k"}}, {},
     {"gcpRequireCustomerManagedKeys": True}),
    (t.GCP_INSTANCE_TEMPLATE, {"disks": [{"diskEncryptionKey": {"kmsKeySelfLink": "k"}}]}, {"disks": [{}]},
     {"gcpRequireCustomerManagedKeys": True}),
    (t.AZ_VM, {"securityProfile": {"encryptionAtHost": True}}, {"securityProfile": {}}, None),
    (t.AZ_VMSS, {"virtualMachineProfile": {"securityProfile": {"encryptionAtHost": True}}}, {}, None),
    (t.AZ_DISK, {"encryption": {"type": "EncryptionAtRestWithCustomerKey"}},
     {"encryption": {"type": "EncryptionAtRestWithPlatformKey"}}, {"azureRequireCustomerManagedKeys": True}),
])
def test_disks_encrypted(type_token: str, good: dict[str, Any], bad: dict[str, Any],
                         config: dict[str, Any] | None) -> None:
    assert check("disks-encrypted", type_token, good, config) == []
    assert check("disks-encrypted", type_token, bad, config) != []


def test_gcp_disks_pass_without_cmek_since_google_encrypts_them() -> None:
    assert check("disks-encrypted", t.GCP_DISK, {}) == []


def test_an_aws_instance_from_a_launch_template_is_judged_by_the_template() -> None:
    from_template = {"launchTemplate": {"id": "lt-1", "version": "1"}}
    assert check("disks-encrypted", t.AWS_INSTANCE, from_template) == []
    assert check("instance-metadata-locked-down", t.AWS_INSTANCE, from_template) == []
    assert check("disks-encrypted", t.AWS_INSTANCE, {**from_template, "rootBlockDevice": {"encrypted": False}}) != []
    assert check("disks-encrypted", t.AWS_INSTANCE, {}) != []


# ----------------------------------------------------------------------------- boot payloads

KEY_PEM = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI...\n-----END EC PRIVATE KEY-----\n"
CLEAN = "#cloud-config\nwrite_files:\n- path: /etc/x\n  content: |\n    token: '@BOOTSTRAP_TOKEN@'\n"
WITH_TOKEN = "#!/bin/sh\nkubeadm join --token abcdef.0123456789abcdef\n"
HIDDEN = ("#cloud-config\nwrite_files:\n- path: /etc/kubernetes/pki/ca.key\n  encoding: gz+b64\n  content: "
          + b64(gzip.compress(KEY_PEM.encode())) + "\n")
ENC_KEY = ("#cloud-config\nwrite_files:\n- path: /etc/enc.yaml\n  content: |\n    kind: EncryptionConfiguration\n"
           "    resources:\n    - providers:\n      - secretbox:\n          keys:\n          - name: key1\n"
           "            secret: " + b64(bytes(range(32))) + "\n")


@pytest.mark.parametrize(("type_token", "good", "bad"), [
    (t.AWS_INSTANCE, {"userData": CLEAN}, {"userData": WITH_TOKEN}),
    (t.AWS_INSTANCE, {"userDataBase64": b64(CLEAN)}, {"userDataBase64": b64(gzip.compress(KEY_PEM.encode()))}),
    (t.AWS_LAUNCH_TEMPLATE, {"userData": b64(gzip.compress(CLEAN.encode()))}, {"userData": b64(HIDDEN)}),
    (t.GCP_INSTANCE, {"metadata": {"user-data": CLEAN, "ssh-keys": "ubuntu:ssh-ed25519 AAAA"}},
     {"metadata": {"user-data": CLEAN, "startup-script": WITH_TOKEN}}),
    (t.GCP_INSTANCE_TEMPLATE, {"metadataStartupScript": "#!/bin/sh\necho hi\n"}, {"metadataStartupScript": KEY_PEM}),
    (t.AZ_VM, {"osProfile": {"customData": b64(CLEAN)}}, {"osProfile": {"customData": b64(ENC_KEY)}}),
    (t.AZ_VMSS, {"virtualMachineProfile": {"osProfile": {"customData": b64(CLEAN)}}},
     {"virtualMachineProfile": {"userData": b64(KEY_PEM)}}),
    (t.RENDERED_USER_DATA, {"role": "worker-a", "userData": b64(CLEAN)}, {"role": "worker-a", "userData": b64(HIDDEN)}),
])
def test_no_key_material_in_boot_payloads(type_token: str, good: dict[str, Any], bad: dict[str, Any]) -> None:
    assert check("no-key-material-in-user-data", type_token, good) == []
    found = check("no-key-material-in-user-data", type_token, bad)
    assert found and "secret store" in found[0]


def test_extra_patterns_are_configurable() -> None:
    config = {"extraPatterns": [r"AKIA[0-9A-Z]{16}"]}
    assert check("no-key-material-in-user-data", t.AWS_INSTANCE, {"userData": "x=AKIAABCDEFGHIJKLMNOP"}, config)


def control_plane_user_data(extra: dict[str, str], first_provider: str = "secretbox") -> str:
    args = [{"name": "audit-log-path", "value": "/var/log/a.log"}, {"name": "audit-policy-file", "value": "/p"},
            {"name": "encryption-provider-config", "value": "/e"}]
    args = [a for a in args if a["name"] not in extra] + [{"name": k, "value": v} for k, v in extra.items()]
    kubeadm = "\n".join(["apiVersion: kubeadm.k8s.io/v1beta4", "kind: InitConfiguration", "---",
                         "apiVersion: kubeadm.k8s.io/v1beta4", "kind: ClusterConfiguration", "apiServer:",
                         "  extraArgs:"] + [f"  - name: {a['name']}\n    value: '{a['value']}'" for a in args])
    encryption = (f"kind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n"
                  f"  - {first_provider}: {{}}\n  - identity: {{}}\n")
    import yaml

    return "#cloud-config\n" + yaml.safe_dump({"write_files": [
        {"path": "/etc/cfcr/kubeadm.yaml.tmpl", "content": kubeadm},
        {"path": "/etc/cfcr/encryption.yaml.tmpl", "content": encryption}]})


@pytest.mark.parametrize(("type_token", "wrap"), [
    (t.AWS_LAUNCH_TEMPLATE, lambda s: {"userData": b64(gzip.compress(s.encode()))}),
    (t.AWS_INSTANCE, lambda s: {"userData": s}),
    (t.GCP_INSTANCE, lambda s: {"metadata": {"user-data": s}}),
    (t.AZ_VMSS, lambda s: {"virtualMachineProfile": {"osProfile": {"customData": b64(s)}}}),
    (t.RENDERED_USER_DATA, lambda s: {"role": "control-plane-0", "userData": b64(s)}),
])
def test_secrets_encryption_and_audit_from_the_control_plane_bootstrap(type_token: str, wrap: Any) -> None:
    good = wrap(control_plane_user_data({}))
    assert check("secrets-encrypted-at-rest", type_token, good) == []
    assert check("audit-logging-enabled", type_token, good) == []
    assert "plain text" in check("secrets-encrypted-at-rest", type_token,
                                 wrap(control_plane_user_data({"encryption-provider-config": ""})))[0]
    assert "'identity' provider first" in check("secrets-encrypted-at-rest", type_token,
                                                wrap(control_plane_user_data({}, first_provider="identity")))[0]
    assert "--audit-policy-file" in check("audit-logging-enabled", type_token,
                                          wrap(control_plane_user_data({"audit-policy-file": ""})))[0]


def test_secrets_encryption_and_audit_from_the_summary() -> None:
    assert check("secrets-encrypted-at-rest", t.BOOTSTRAP, summary()) == []
    assert check("secrets-encrypted-at-rest", t.BOOTSTRAP, summary(secretsEncryption=False)) != []
    assert check("audit-logging-enabled", t.BOOTSTRAP, summary()) == []
    assert check("audit-logging-enabled", t.BOOTSTRAP, summary(auditLogging=False)) != []


def test_worker_user_data_has_no_cluster_configuration_to_judge() -> None:
    assert check("audit-logging-enabled", t.AWS_INSTANCE, {"userData": CLEAN}) == []


# ----------------------------------------------------------------------------- node pools


@pytest.mark.parametrize(("type_token", "good", "bad"), [
    (t.AWS_ASG, {"healthCheckType": "ELB", "maxSize": 6}, {"maxSize": 6}),
    (t.AWS_ASG, {"healthCheckType": "EC2"}, {"healthCheckType": "EC2", "suspendedProcesses": ["ReplaceUnhealthy"]}),
    (t.GCP_RIGM, {"autoHealingPolicies": {"healthCheck": "hc", "initialDelaySec": 300}}, {}),
    (t.GCP_IGM, {"autoHealingPolicies": [{"healthCheck": "hc"}]}, {"autoHealingPolicies": []}),
    (t.AZ_VMSS, {"automaticRepairsPolicy": {"enabled": True, "gracePeriod": "PT10M"},
                 "virtualMachineProfile": {"extensionProfile": {"extensions": [
                     {"name": "health", "publisher": "Microsoft.ManagedServices", "type": "ApplicationHealthLinux"}]}}},
     {"automaticRepairsPolicy": {"enabled": False}}),
])
def test_node_pools_self_heal(type_token: str, good: dict[str, Any], bad: dict[str, Any]) -> None:
    assert check("node-pools-self-heal", type_token, good) == []
    assert check("node-pools-self-heal", type_token, bad) != []


@pytest.mark.parametrize(("type_token", "good", "bad"), [
    (t.BOOTSTRAP, summary(), summary(nodePools=[{"name": "spot", "maxSize": 500.0}])),
    (t.AWS_ASG, {"maxSize": 100}, {"maxSize": 101.0}),
    (t.GCP_RIGM, {"targetSize": 3}, {"targetSize": 250}),
    (t.GCP_REGION_AUTOSCALER, {"autoscalingPolicy": {"maxReplicas": 10}}, {"autoscalingPolicy": {"maxReplicas": 1000}}),
    (t.AZ_VMSS, {"sku": {"capacity": 3}}, {"sku": {"capacity": 200}}),
    (t.AZ_AUTOSCALE[0], {"profiles": [{"capacity": {"maximum": "10"}}]},
     {"profiles": [{"capacity": {"maximum": "300"}}]}),
])
def test_node_pool_max_size(type_token: str, good: dict[str, Any], bad: dict[str, Any]) -> None:
    assert check("node-pool-max-size", type_token, good) == []
    assert "above the limit of 100" in check("node-pool-max-size", type_token, bad)[0]
    assert check("node-pool-max-size", type_token, bad, {"maxPoolSize": 5000}) == []


# ----------------------------------------------------------------------------- certificates


@pytest.mark.parametrize(("type_token", "good", "bad"), [
    (t.TLS_SELF_SIGNED, {"isCaCertificate": True, "validityPeriodHours": 87600.0},
     {"isCaCertificate": True, "validityPeriodHours": 262800}),
    (t.TLS_SELF_SIGNED, {"isCaCertificate": True, "validityPeriodHours": 43800},
     {"isCaCertificate": True, "validityPeriodHours": 8760}),
    (t.TLS_LOCALLY_SIGNED, {"validityPeriodHours": 8760, "earlyRenewalHours": 720},
     {"validityPeriodHours": 43800, "earlyRenewalHours": 720}),
    (t.TLS_LOCALLY_SIGNED, {"validityPeriodHours": 2000}, {"validityPeriodHours": 168}),
    (t.TLS_LOCALLY_SIGNED, {"validityPeriodHours": 8760}, {"validityPeriodHours": 8760, "earlyRenewalHours": 8760}),
])
def test_certificate_validity(type_token: str, good: dict[str, Any], bad: dict[str, Any]) -> None:
    assert check("certificate-validity", type_token, good) == []
    assert check("certificate-validity", type_token, bad) != []


@pytest.mark.parametrize(("good", "bad"), [
    ({"algorithm": "ECDSA", "ecdsaCurve": "P256"}, {"algorithm": "ECDSA"}),  # pulumi-tls defaults to P224
    ({"algorithm": "ECDSA", "ecdsaCurve": "P384"}, {"algorithm": "ECDSA", "ecdsaCurve": "P224"}),
    ({"algorithm": "RSA"}, {"algorithm": "RSA", "rsaBits": 1024.0}),
    ({"algorithm": "RSA", "rsaBits": 4096}, {"algorithm": "ED25519"}),
])
def test_certificate_key_algorithms(good: dict[str, Any], bad: dict[str, Any]) -> None:
    assert check("certificate-key-algorithms", t.TLS_PRIVATE_KEY, good) == []
    assert check("certificate-key-algorithms", t.TLS_PRIVATE_KEY, bad) != []


def test_key_algorithms_are_configurable() -> None:
    config = {"allowedAlgorithms": ["ECDSA", "RSA", "ED25519"], "minRsaBits": 3072}
    assert check("certificate-key-algorithms", t.TLS_PRIVATE_KEY, {"algorithm": "ED25519"}, config) == []
    assert check("certificate-key-algorithms", t.TLS_PRIVATE_KEY, {"algorithm": "RSA"}, config) != []


# ----------------------------------------------------------------------------- tags

TAGS = {"owner": "team", "cost-centre": "cc-1"}


@pytest.mark.parametrize(("type_token", "good", "bad"), [
    (t.BOOTSTRAP, summary(), summary(tags={"owner": "team"})),
    (t.AWS_INSTANCE, {"tags": TAGS}, {"tags": {"owner": "team", "cost-centre": " "}}),
    (t.AWS_ASG, {"tags": [{"key": k, "value": v, "propagateAtLaunch": True} for k, v in TAGS.items()]},
     {"tags": [{"key": "owner", "value": "team"}]}),
    (t.GCP_INSTANCE_TEMPLATE, {"labels": TAGS}, {"tags": ["node"]}),
    (t.AZ_VMSS, {"tags": TAGS}, {}),
])
def test_required_tags(type_token: str, good: dict[str, Any], bad: dict[str, Any]) -> None:
    assert check("required-tags", type_token, good) == []
    found = check("required-tags", type_token, bad)
    assert found and "cost-centre" in found[0]


def test_provider_default_tags_count() -> None:
    provider = {"defaultTags": {"tags": TAGS}}
    assert check("required-tags", t.AWS_VOLUME, {}, provider_props=provider) == []
    assert check("required-tags", t.GCP_DISK, {}, provider_props={"defaultLabels": TAGS}) == []
    assert check("required-tags", t.AWS_VOLUME, {}, {"requiredTags": ["team"]}, provider) == ["missing tags: team"]


@pytest.mark.parametrize(("is_ca", "limit"), [(True, 87600), (False, 8760)])
def test_certificate_validity_limits_are_exact(is_ca: bool, limit: int) -> None:
    """The default limits hold to the hour: a certificate valid for exactly the maximum passes,
    one hour more is reported, naming the limit."""
    props = {"isCaCertificate": True} if is_ca else {}
    type_token = t.TLS_SELF_SIGNED if is_ca else t.TLS_LOCALLY_SIGNED
    assert check("certificate-validity", type_token, {**props, "validityPeriodHours": limit}) == []
    (message,) = check("certificate-validity", type_token, {**props, "validityPeriodHours": limit + 1})
    assert f"longer than the limit of {limit}h" in message
