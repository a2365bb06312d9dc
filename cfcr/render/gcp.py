"""Stand-ins for the GCP provider under the mock runtime: what the program reads back from GCP
resources (names, self links, e-mails, addresses) and the data sources it calls.

Deterministic: every value derives from the resource's inputs and URN, in the shape GCP gives
it. The project is the resource's ``project`` input (the program always sets it).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from typing import Any

from cfcr.render.aws import ID_KEY

GCP_PREFIX = "gcp:"
COMPUTE = "https://www.googleapis.com/compute/v1"
_EXTERNAL_POOL = ipaddress.IPv4Network("198.51.100.0/24")
"""Where stand-in external addresses come from (TEST-NET-2, RFC 5737)."""


def _hex(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _location(typ: str, inputs: Mapping[str, Any]) -> str:
    project = inputs.get("project") or "example-project"
    if inputs.get("zone"):
        return f"projects/{project}/zones/{inputs['zone']}"
    if inputs.get("region") and typ not in ("gcp:compute/healthCheck:HealthCheck",):
        return f"projects/{project}/regions/{inputs['region']}"
    return f"projects/{project}/global"


_COLLECTIONS = {
    "network": "networks", "subnetwork": "subnetworks", "firewall": "firewalls", "router": "routers",
    "address": "addresses", "forwardingRule": "forwardingRules", "regionBackendService": "backendServices",
    "regionHealthCheck": "healthChecks", "healthCheck": "healthChecks", "regionTargetTcpProxy": "targetTcpProxies",
    "instanceGroup": "instanceGroups", "instance": "instances", "disk": "disks",
    "instanceTemplate": "instanceTemplates", "instanceGroupManager": "instanceGroupManagers",
}


def gcp_resource(inputs: Mapping[str, Any], urn: str) -> dict[str, Any]:
    """Any ``gcp:`` resource: inputs echoed, plus the name, id and self link GCP would give it."""
    typ = urn.rsplit("::", 1)[0]
    logical = urn.rsplit("::", 1)[-1]
    kind = typ.rsplit(":", 1)[0].split("/")[-1]
    out: dict[str, Any] = {**inputs}
    name = inputs.get("name") or (f"{inputs['namePrefix']}{_hex(urn, 26)}" if inputs.get("namePrefix") else logical)
    out.setdefault("name", name)
    project = inputs.get("project") or "example-project"
    collection = _COLLECTIONS.get(kind)
    if collection is not None and typ.startswith("gcp:compute/"):
        path = f"{_location(typ, inputs)}/{collection}/{name}"
        out["selfLink"] = f"{COMPUTE}/{path}"
        out[ID_KEY] = path
    if typ == "gcp:compute/instanceTemplate:InstanceTemplate":
        out["selfLinkUnique"] = f"{out['selfLink']}?uniqueId={int(_hex(urn, 15), 16)}"
    elif typ == "gcp:compute/instanceGroupManager:InstanceGroupManager":
        out["instanceGroup"] = f"{COMPUTE}/{_location(typ, inputs)}/instanceGroups/{name}"
    elif typ == "gcp:compute/instance:Instance":
        out["instanceId"] = str(int(_hex(urn, 15), 16))
    elif typ == "gcp:compute/address:Address" and not inputs.get("address"):
        if inputs.get("addressType") == "INTERNAL":
            out["address"] = None
        else:
            out["address"] = str(_EXTERNAL_POOL.network_address + 1 + int(_hex(urn, 4), 16) % 250)
    elif typ == "gcp:serviceaccount/account:Account":
        out["email"] = f"{inputs['accountId']}@{project}.iam.gserviceaccount.com"
        out["name"] = f"projects/{project}/serviceAccounts/{out['email']}"
        out["member"] = f"serviceAccount:{out['email']}"
        out[ID_KEY] = out["name"]
    elif typ == "gcp:projects/iAMCustomRole:IAMCustomRole":
        out["name"] = f"projects/{project}/roles/{inputs.get('roleId')}"
        out[ID_KEY] = out["name"]
    elif typ == "gcp:secretmanager/secret:Secret":
        out["name"] = f"projects/{project}/secrets/{inputs.get('secretId')}"
        out[ID_KEY] = out["name"]
    elif typ == "gcp:dns/managedZone:ManagedZone":
        out[ID_KEY] = f"projects/{project}/managedZones/{name}"
    elif typ == "gcp:storage/bucket:Bucket":
        out["url"] = f"gs://{name}"
        out["selfLink"] = f"https://www.googleapis.com/storage/v1/b/{name}"
        out[ID_KEY] = name
    return out


def gcp_invoke(token: str, args: Mapping[str, Any]) -> dict[str, Any] | None:
    """Stand-ins for the GCP data sources the program reads; None for unknown tokens."""
    if token == "gcp:compute/getZones:getZones":
        region = str(args.get("region") or "europe-west4")
        return {"names": [f"{region}-{c}" for c in "abc"], "project": args.get("project"), "region": region,
                "id": region}
    if token == "gcp:compute/getImage:getImage":
        project = str(args.get("project") or "ubuntu-os-cloud")
        family = str(args.get("family") or "")
        image = f"{family}-v2026{int(_hex(family, 4), 16) % 1000:03d}"
        return {"selfLink": f"{COMPUTE}/projects/{project}/global/images/{image}", "name": image, "family": family,
                "project": project, "id": image}
    return None
