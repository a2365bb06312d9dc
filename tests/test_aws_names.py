"""Every name cfcr generates on AWS fits the cloud's limits, for every cluster name the config
accepts (a DNS label of up to 63 characters) and every pool name (the same); and every stack
whose names fit keeps exactly the names it has.

A physical name is either explicit (the resource's name input) or the one Pulumi gives it:
``<logical name>-<7 hex>`` (its *autonamed form*). ``cfcr.aws.names.NAME_LIMITS`` is the table
of limits, with sources; the tests here hold every rendered resource to it, and hold the
Kubernetes and DNS names the program emits (member names, etcd names, certificate SANs, the
private zone and its records) to RFC 1035.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from importlib import import_module
from typing import Any

import pytest

from cfcr.aws.names import (
    AUTONAME_SUFFIX,
    NAME_LIMITS,
    autonamed_form_fits,
    check_name,
    fit,
    physical_name,
    replace_first,
)
from cfcr.config import load_spec, read_stack_config
from cfcr.config.topology import DNS_LABEL_MAX, control_plane_members, fit_name
from cfcr.render import RecordedResource, RenderResult, render_stack, unwrap

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
LONGEST_NAME = ("a-very-long-cluster-name-" * 3)[:62] + "z"
LONGEST_POOL = ("pool-with-a-long-name-" * 3)[:62] + "q"
PKI_NAME_CAP = 40
"""The longest cluster name ``cfcr/pki/specs.py`` accepts today (its CA common names are
``<cluster>-<stem>-g<n>``, at most 64 characters)."""
TAG_KEY_MAX, TAG_VALUE_MAX = 128, 256
"""AWS tag limits (AWS General Reference, "Tagging AWS resources")."""


def is_dns_label(value: str) -> bool:
    return bool(DNS_LABEL.match(value))


def is_dns_name(value: str) -> bool:
    """RFC 1035 preferred syntax (lowercase), at most 253 characters; ``*`` as a first label."""
    labels = value.rstrip(".").split(".")
    if labels and labels[0] == "*":
        labels = labels[1:]
    return 0 < len(value.rstrip(".")) <= 253 and bool(labels) and all(is_dns_label(label) for label in labels)


# ============================================================================ fit_name

def test_a_name_that_fits_is_returned_unchanged() -> None:
    assert fit_name("cfcr-aws-stable-cp-0", 63) == "cfcr-aws-stable-cp-0"
    assert fit_name("x" * 63, 63) == "x" * 63
    assert fit("cfcr-aws-stable-api", 32) == "cfcr-aws-stable-api"


def test_a_long_name_is_cut_to_the_limit_with_a_hash_of_all_of_it() -> None:
    long = LONGEST_NAME + "-api"
    short = fit_name(long, 32)
    assert len(short) == 32 and short.startswith(LONGEST_NAME[:23]) and is_dns_label(short)
    assert short == fit_name(long, 32), "stable across runs"
    # names that differ only past the cut do not collide
    twins = {fit_name(LONGEST_NAME[:-1] + c + "-api", 32) for c in "abcdefghijklmnopqrstuvwxyz0123456789"}
    assert len(twins) == 36


def test_the_suffix_to_keep_survives_and_is_dropped_only_without_room() -> None:
    name = f"{LONGEST_NAME}-cp-4"
    short = fit_name(name, 63, keep="-cp-4")
    assert len(short) == 63 and short.endswith("-cp-4") and is_dns_label(short)
    assert fit_name(name, 12, keep="-cp-4") == f"{name[:3]}-{short[-13:-5]}", "keep dropped, same hash"
    with pytest.raises(ValueError, match="does not end with"):
        fit_name(name, 20, keep="-cp-3")
    with pytest.raises(ValueError, match="cannot hold"):
        fit_name(name, 9)


def test_the_cut_never_leaves_a_separator_before_the_hash() -> None:
    name = "abcdefghijklmnopqrstuv-------------------------------wxyz"
    short = fit_name(name, 32)
    assert "--" not in short and is_dns_label(short)


# ============================================================================ member names

@pytest.mark.parametrize("count", [1, 3, 5])
def test_member_names_of_the_longest_cluster_name_are_dns_labels(count: int) -> None:
    spec = load_spec({"cfcr:cloud": "aws", "cfcr:region": "us-east-1", "cfcr:name": LONGEST_NAME,
                      "cfcr:controlPlane": {"count": count}}, "t")
    names = [m.name for m in control_plane_members(spec)]
    assert len(set(names)) == count
    for i, name in enumerate(names):
        assert is_dns_label(name) and len(name) <= DNS_LABEL_MAX, name
        assert name.endswith(f"-cp-{i}") and name.startswith(LONGEST_NAME[:40])


def test_member_names_that_fit_are_unchanged() -> None:
    for name in ("t", "cfcr-aws-stable", "x" * (DNS_LABEL_MAX - len("-cp-4"))):
        spec = load_spec({"cfcr:cloud": "aws", "cfcr:region": "us-east-1", "cfcr:name": name,
                          "cfcr:controlPlane": {"count": 5}}, "t")
        assert [m.name for m in control_plane_members(spec)] == [f"{name}-cp-{i}" for i in range(5)]


# ============================================================================ physical names

def test_physical_name_leaves_a_fitting_autonamed_form_to_pulumi() -> None:
    lb = "aws:lb/loadBalancer:LoadBalancer"
    fits = "x" * (32 - AUTONAME_SUFFIX)
    assert autonamed_form_fits(lb, fits) and physical_name(lb, fits) is None and replace_first(None) is None
    over = fits + "y"
    assert not autonamed_form_fits(lb, over)
    assert physical_name(lb, over) == over, "an explicit name of the limit's length needs no cut"
    explicit = physical_name(lb, f"{LONGEST_NAME}-api")
    assert explicit is not None and len(explicit) == 32 and replace_first(explicit) is True
    check_name(lb, explicit)


def test_check_name_says_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="AWS allows 512"):
        check_name("aws:secretsmanager/secret:Secret", "s" * 513)
    with pytest.raises(ValueError, match="does not match"):
        check_name("aws:kms/alias:Alias", "cfcr/no-alias-prefix")
    assert check_name("aws:iam/rolePolicy:RolePolicy", "ebs-csi-controller") == "ebs-csi-controller"


def test_a_label_too_long_for_an_autoscaler_tag_is_a_clear_error() -> None:
    from cfcr.aws.node_pool import autoscaler_tags

    def spec_with(label: str) -> Any:
        return load_spec({"cfcr:cloud": "aws", "cfcr:region": "us-east-1", "cfcr:name": LONGEST_NAME,
                          "cfcr:nodePools": [{"name": LONGEST_POOL, "minSize": 0, "maxSize": 1,
                                              "labels": {label: "x"}}]}, "t")

    prefix = "labels." + "p" * 30 + ".example.com/"  # a label key: DNS-subdomain prefix / name of <= 63
    fits = prefix + "k" * (82 - len(prefix))
    spec = spec_with(fits)
    assert all(len(k) <= 128 for k in autoscaler_tags(spec, spec.node_pools[0]))
    spec = spec_with(fits + "k")
    with pytest.raises(ValueError, match=f"node pool {LONGEST_POOL}: .* exceed AWS's 128 characters"):
        autoscaler_tags(spec, spec.node_pools[0])


# ============================================================================ renders

def long_config(cluster: str) -> dict[str, Any]:
    raw = read_stack_config("aws-stable")
    raw["cfcr:name"] = cluster
    pools = list(raw["cfcr:nodePools"])
    raw["cfcr:nodePools"] = [*pools, {"name": LONGEST_POOL, "minSize": 0, "maxSize": 2, "spot": True}]
    return raw


@pytest.fixture(scope="module", params=[
    pytest.param(PKI_NAME_CAP, id="cluster-name-40"),
    pytest.param(63, id="cluster-name-63"),
])
def long_render(request: pytest.FixtureRequest) -> RenderResult:
    cluster = LONGEST_NAME[: request.param - 1] + "z"
    return render_stack("aws-stable", None, config=long_config(cluster))


@pytest.fixture(scope="module")
def default_render() -> RenderResult:
    return render_stack("aws-stable", None)


def _inputs(r: RecordedResource) -> dict[str, Any]:
    value = unwrap(r.inputs)
    assert isinstance(value, dict)
    return value


def physical_names(result: RenderResult) -> Iterator[tuple[RecordedResource, str, bool]]:
    """(resource, physical name, explicit?) of every resource of a type in NAME_LIMITS."""
    for r in result.resources:
        rule = NAME_LIMITS.get(r.type)
        if rule is None:
            continue
        explicit = _inputs(r).get(rule.field)
        if explicit is not None:
            yield r, str(explicit), True
        elif rule.autonamed:
            yield r, f"{r.name}-{'0' * (AUTONAME_SUFFIX - 1)}", False
        else:
            raise AssertionError(f"{r.type} {r.name}: no {rule.field} and Pulumi does not name it")


def test_every_named_type_has_a_limit(long_render: RenderResult) -> None:
    """A new resource type with a name must get a row in NAME_LIMITS (so its limit is checked)."""
    missing = set()
    for token in {r.type for r in long_render.resources if r.type.startswith("aws:")}:
        _, module, cls = token.split(":")
        args = getattr(import_module(f"pulumi_aws.{module.split('/')[0]}"), f"{cls}Args")
        params = inspect.signature(args.__init__).parameters
        if ({"name", "name_prefix"} & set(params)) and token not in NAME_LIMITS:
            missing.add(token)
    assert not missing, f"add to cfcr.aws.names.NAME_LIMITS: {sorted(missing)}"


def test_every_physical_name_fits_its_type(long_render: RenderResult) -> None:
    problems = []
    for r, name, explicit in physical_names(long_render):
        rule = NAME_LIMITS[r.type]
        what = "explicit name" if explicit else "autonamed form"
        if len(name) > rule.max_length:
            problems.append(f"{r.type} {r.name}: {what} {name!r} has {len(name)} > {rule.max_length} characters")
        elif not re.fullmatch(rule.pattern, name):
            problems.append(f"{r.type} {r.name}: {what} {name!r} does not match {rule.pattern}")
    assert not problems, "\n".join(problems)


def test_explicit_names_are_unique_per_type(long_render: RenderResult) -> None:
    seen: dict[tuple[str, str], str] = {}
    for r, name, explicit in physical_names(long_render):
        if explicit and r.type not in ("aws:iam/rolePolicy:RolePolicy",):  # inline policy names are per role
            key = (r.type, name)
            assert key not in seen, f"{r.name} and {seen[key]} are both {name!r}"
            seen[key] = r.name


def _tags(r: RecordedResource) -> Iterator[tuple[str, str]]:
    args = _inputs(r)
    tags = args.get("tags")
    if isinstance(tags, dict):
        yield from ((str(k), str(v)) for k, v in tags.items())
    elif isinstance(tags, list):  # auto scaling group tags
        yield from ((str(t["key"]), str(t["value"])) for t in tags)
    for spec in args.get("tagSpecifications") or []:
        yield from ((str(k), str(v)) for k, v in (spec.get("tags") or {}).items())


def test_every_tag_fits(long_render: RenderResult) -> None:
    problems = [f"{r.name}: {k}={v}" for r in long_render.resources if r.type.startswith("aws:")
                for k, v in _tags(r) if len(k) > TAG_KEY_MAX or len(v) > TAG_VALUE_MAX]
    assert not problems, "\n".join(problems)


INLINE_POLICY_MAX, MANAGED_POLICY_MAX, ATTACHED_POLICIES_MAX = 10_240, 6_144, 10
"""IAM quotas (IAM User Guide, "IAM and AWS STS quotas"): a role's inline policies together, one
managed policy, managed policies attached to a role (the default quota); whitespace is not counted."""


def _policy_size(document: str) -> int:
    return len(re.sub(r"\s", "", document))


def test_iam_policies_fit_their_quotas(long_render: RenderResult, default_render: RenderResult) -> None:
    """The secrets list and the tag conditions grow with the cluster name: every role's
    policies must still fit at the longest name."""
    for result in (long_render, default_render):
        inline: dict[str, int] = {}
        for r in result.resources:
            if r.type == "aws:iam/rolePolicy:RolePolicy":
                inline[_inputs(r)["role"]] = inline.get(_inputs(r)["role"], 0) + _policy_size(_inputs(r)["policy"])
            if r.type == "aws:iam/policy:Policy":
                assert _policy_size(_inputs(r)["policy"]) <= MANAGED_POLICY_MAX, r.name
        assert inline and all(size <= INLINE_POLICY_MAX for size in inline.values()), inline
        attached: dict[str, int] = {}
        for r in result.resources:
            if r.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
                attached[_inputs(r)["role"]] = attached.get(_inputs(r)["role"], 0) + 1
        assert all(n <= ATTACHED_POLICIES_MAX for n in attached.values()), attached


def _etcd_names(result: RenderResult) -> set[str]:
    names = set()
    for path, pod in result.manifests.items():
        if not path.startswith("static-pods/"):
            continue
        command = pod["spec"]["containers"][0]["command"]
        for flag in command:
            if flag.startswith("--name="):
                names.add(flag.split("=", 1)[1])
            if flag.startswith("--initial-cluster="):
                names.update(entry.split("=", 1)[0] for entry in flag.split("=", 1)[1].split(","))
    return names


def test_kubernetes_and_dns_names_are_valid(long_render: RenderResult) -> None:
    members = [m["name"] for m in long_render.exports["controlPlaneMembers"]]
    assert members and all(is_dns_label(m) for m in members), members
    assert _etcd_names(long_render) == set(members)
    problems = []
    for r in long_render.resources:
        args = _inputs(r)
        if r.type == "tls:index/certRequest:CertRequest":
            problems += [f"{r.name}: SAN {d!r}" for d in args.get("dnsNames") or [] if not is_dns_name(d)]
        if r.type in ("tls:index/certRequest:CertRequest", "tls:index/selfSignedCert:SelfSignedCert"):
            cn = (args.get("subject") or {}).get("commonName", "")
            if not 0 < len(cn) <= 64:  # RFC 5280 ub-common-name
                problems.append(f"{r.name}: common name {cn!r}")
        if r.type in ("aws:route53/zone:Zone", "aws:route53/record:Record") and not is_dns_name(args["name"]):
            problems.append(f"{r.name}: DNS name {args['name']!r}")
    assert not problems, "\n".join(problems)
    for member in members:  # node names: each member's kubelet registers as the member
        assert any(member.encode() in data or member.encode() in _gunzip(data)
                   for data in long_render.user_data.values()), member


def _gunzip(data: bytes) -> bytes:
    import gzip

    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


# ============================================================================ nothing moves

def test_the_default_stack_keeps_its_names(default_render: RenderResult) -> None:
    """Every name of a stack whose names fit is the un-truncated form it had before cfcr.aws.names:
    types Pulumi names get no name input, member names are ``<cluster>-cp-<i>``, and the explicit
    names are the plain derivations."""
    spec = load_spec(read_stack_config("aws-stable"), "aws-stable")
    n = spec.name
    assert [m["name"] for m in default_render.exports["controlPlaneMembers"]] == [
        f"{n}-cp-{i}" for i in range(spec.control_plane.count)]
    for r, name, explicit in physical_names(default_render):
        rule = NAME_LIMITS[r.type]
        if r.type in ("aws:iam/rolePolicy:RolePolicy", "aws:secretsmanager/secret:Secret",
                      "aws:kms/alias:Alias", "aws:route53/zone:Zone", "aws:route53/record:Record"):
            continue  # always explicit, checked below
        if r.type == "aws:iam/instanceProfile:InstanceProfile" and "-worker-" in r.name:
            # a pool's join and joined profiles are named explicitly: the control plane swaps a
            # joined worker from one to the other by name (cfcr.aws.identity.pool_profile_names)
            assert name == r.name, (r.name, name)
            continue
        if r.type == "aws:iam/role:Role" and r.name.endswith("-etcd-backup"):
            # the snapshot writer is named explicitly, with its region: every member builds its ARN
            # to assume it (cfcr.aws.backups), and IAM names are account-wide
            assert name == f"{r.name}-{spec.region}", (r.name, name)
            continue
        assert not explicit, f"{r.type} {r.name} got the explicit name {name!r}; Pulumi named it before"
        assert autonamed_form_fits(r.type, r.name), (r.type, r.name, rule.max_length)
    given = {(r.type, name) for r, name, e in physical_names(default_render) if e}
    assert ("aws:kms/alias:Alias", f"alias/cfcr/{n}/secrets") in given
    assert ("aws:route53/zone:Zone", f"{n}.cfcr.internal") in given
    assert ("aws:route53/record:Record", f"api.{n}.cfcr.internal") in given
    secrets = {r.name: name for r, name, e in physical_names(default_render) if r.type.endswith("secret:Secret")}
    assert secrets and all(logical == name for logical, name in secrets.items())
