"""Stand-ins for the AWS provider under the mock runtime: its resources and the data sources
the program reads.

Small and deterministic: only what the program reads back from AWS resources (ids, ARNs,
DNS names, versions) so that wiring is visible in a render. Every value derives from the
resource's URN, in the shape AWS gives it; the account is always 123456789012.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

ACCOUNT = "123456789012"
ID_KEY = "__id"
"""A stand-in may return the resource's id under this key (the mock runtime pops it)."""

_AWS_ID_PREFIX = {
    "aws:ec2/vpc:Vpc": "vpc",
    "aws:ec2/subnet:Subnet": "subnet",
    "aws:ec2/securityGroup:SecurityGroup": "sg",
    "aws:ec2/instance:Instance": "i",
    "aws:ebs/volume:Volume": "vol",
    "aws:ec2/launchTemplate:LaunchTemplate": "lt",
    "aws:ec2/internetGateway:InternetGateway": "igw",
    "aws:ec2/natGateway:NatGateway": "nat",
    "aws:ec2/routeTable:RouteTable": "rtb",
    "aws:ec2/eip:Eip": "eipalloc",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce",
}


def _aws_region(inputs: Mapping[str, Any]) -> str:
    import pulumi

    return str(inputs.get("region") or pulumi.Config("aws").get("region") or "us-east-1")


def _hex(urn: str, n: int) -> str:
    return hashlib.sha256(urn.encode()).hexdigest()[:n]


def _resource_name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def aws_resource(inputs: Mapping[str, Any], urn: str) -> dict[str, Any]:
    """Any ``aws:`` resource: inputs echoed, plus an AWS-shaped id and an ARN."""
    typ = urn.rsplit("::", 1)[0]
    service = typ.split(":")[1].split("/")[0]
    name = _resource_name(urn)
    region = _aws_region(inputs)
    prefix = _AWS_ID_PREFIX.get(typ)
    out: dict[str, Any] = {**inputs}
    if prefix:
        out[ID_KEY] = f"{prefix}-{_hex(urn, 17)}"
    rid = out.get(ID_KEY, name)
    if service == "iam":
        out.setdefault("arn", f"arn:aws:iam::{ACCOUNT}:{typ.rsplit(':', 1)[1].lower()}/{name}")
        out.setdefault("name", inputs.get("name") or name)
        out.setdefault("uniqueId", "AROA" + _hex(urn, 16).upper())
    else:
        out.setdefault("arn", f"arn:aws:{service}:{region}:{ACCOUNT}:{typ.rsplit(':', 1)[1].lower()}/{rid}")
    if typ == "aws:secretsmanager/secret:Secret":
        secret = inputs.get("name") or name
        out["arn"] = f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{secret}-{_hex(urn, 6)}"
        out[ID_KEY] = out["arn"]
    elif typ == "aws:kms/key:Key":
        key_id = str(uuid_from(urn))
        out.update({ID_KEY: key_id, "keyId": key_id, "arn": f"arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}"})
    elif typ == "aws:lb/loadBalancer:LoadBalancer":
        lb_name = (inputs.get("name") or name)[:32].strip("-")
        kind = "net" if inputs.get("loadBalancerType") == "network" else "app"
        out.update({
            "name": lb_name,
            "dnsName": f"{lb_name}-{_hex(urn, 16)}.elb.{region}.amazonaws.com",
            "zoneId": "Z" + _hex(urn, 13).upper(),
            "arn": f"arn:aws:elasticloadbalancing:{region}:{ACCOUNT}:loadbalancer/{kind}/{lb_name}/{_hex(urn, 16)}",
        })
        out[ID_KEY] = out["arn"]
    elif typ == "aws:lb/targetGroup:TargetGroup":
        tg = (inputs.get("name") or name)[:32].strip("-")
        out["arn"] = f"arn:aws:elasticloadbalancing:{region}:{ACCOUNT}:targetgroup/{tg}/{_hex(urn, 16)}"
        out[ID_KEY] = out["arn"]
    elif typ == "aws:ec2/launchTemplate:LaunchTemplate":
        out.setdefault("latestVersion", 1)
        out.setdefault("defaultVersion", 1)
    elif typ == "aws:route53/zone:Zone":
        out["zoneId"] = "Z" + _hex(urn, 20).upper()
        out[ID_KEY] = out["zoneId"]
    elif typ == "aws:sqs/queue:Queue":
        queue = inputs.get("name") or name
        out["url"] = f"https://sqs.{region}.amazonaws.com/{ACCOUNT}/{queue}"
        out["arn"] = f"arn:aws:sqs:{region}:{ACCOUNT}:{queue}"
        out[ID_KEY] = out["url"]
    elif typ == "aws:autoscaling/group:Group":
        out.setdefault("name", name)
    return out


def uuid_from(urn: str) -> str:
    """A UUID-shaped id derived from the URN."""
    h = _hex(urn, 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def ubuntu_ami(parameter: str) -> str:
    """A stand-in AMI id for an SSM parameter (stable per parameter)."""
    return f"ami-{_hex(parameter, 17)}"


def aws_invoke(token: str, args: Mapping[str, Any]) -> dict[str, Any] | None:
    """Stand-ins for the AWS data sources the program reads; None for unknown tokens."""
    region = str(args.get("region") or _aws_region({}))
    if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
        names = [f"{region}{c}" for c in "abcdef"]
        return {"names": names, "zoneIds": [f"use1-az{i}" for i in range(1, 7)], "id": region, "region": region}
    if token == "aws:ssm/getParameter:getParameter":
        name = str(args.get("name"))
        value = ubuntu_ami(name)
        return {"name": name, "type": "String", "value": value, "insecureValue": value, "arn":
                f"arn:aws:ssm:{region}::parameter{name}", "id": name, "version": 1, "region": region}
    if token == "aws:ec2/getVpc:getVpc":
        return {"id": args.get("id"), "cidrBlock": "10.0.0.0/16", "enableDnsSupport": True,
                "enableDnsHostnames": True, "region": region}
    if token == "aws:ec2/getSubnet:getSubnet":
        sid = str(args.get("id"))
        return {"id": sid, "availabilityZone": f"{region}{'abc'[int(_hex(sid, 2), 16) % 3]}", "region": region}
    return None


AWS_PREFIX = "aws:"
