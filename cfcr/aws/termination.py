"""Drain before termination: the cluster's event queue for aws-node-termination-handler in
queue mode. EventBridge sends it the pools' termination lifecycle actions, spot interruption
warnings, rebalance recommendations, instance state changes and scheduled maintenance; the
handler (addons layer) drains the node and completes the lifecycle hook."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_aws import cloudwatch, sqs

from cfcr.aws.names import physical_name, replace_first
from cfcr.aws.tags import base_tags
from cfcr.config import ClusterSpec

EVENTS: dict[str, dict[str, list[str]]] = {
    "asg-termination": {"source": ["aws.autoscaling"], "detail-type": ["EC2 Instance-terminate Lifecycle Action"]},
    "spot-interruption": {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]},
    "rebalance": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"]},
    "state-change": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]},
    "scheduled-change": {"source": ["aws.health"], "detail-type": ["AWS Health Event"]},
}
"""EventBridge patterns the termination handler acts on."""


@dataclass(frozen=True)
class TerminationQueue:
    """The queue and its rules."""

    queue: sqs.Queue
    """The SQS queue the termination handler polls."""
    rules: list[cloudwatch.EventRule]
    """One EventBridge rule per event kind."""


def build_termination_queue(name: str, spec: ClusterSpec, parent: pulumi.Resource) -> TerminationQueue:
    """SQS queue (SSE), EventBridge rules and targets, and the queue policy."""
    child = pulumi.ResourceOptions(parent=parent)
    # names stay Pulumi's while its autonamed form fits (queue <= 80, rule and target id <= 64)
    queue_name = physical_name("aws:sqs/queue:Queue", f"{name}-termination", keep="-termination")
    queue = sqs.Queue(
        f"{name}-termination",
        name=queue_name,
        message_retention_seconds=300,
        sqs_managed_sse_enabled=True,
        tags=base_tags(spec, f"{name}-termination"),
        opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=replace_first(queue_name)),
    )
    rules = []
    for kind, pattern in EVENTS.items():
        rule_name = physical_name("aws:cloudwatch/eventRule:EventRule", f"{name}-{kind}", keep=f"-{kind}")
        rule = cloudwatch.EventRule(
            f"{name}-{kind}", name=rule_name, description=f"cfcr {spec.name}: {kind} -> termination handler",
            event_pattern=pulumi.Output.json_dumps(pattern), tags=base_tags(spec, f"{name}-{kind}"),
            opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=replace_first(rule_name)),
        )
        target_id = physical_name("aws:cloudwatch/eventTarget:EventTarget", f"{name}-{kind}", keep=f"-{kind}")
        cloudwatch.EventTarget(f"{name}-{kind}", rule=rule.name, arn=queue.arn, target_id=target_id,
                               opts=pulumi.ResourceOptions(parent=parent,
                                                           delete_before_replace=replace_first(target_id)))
        rules.append(rule)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "EventBridgeToQueue", "Effect": "Allow",
            "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
            "Action": "sqs:SendMessage", "Resource": queue.arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": [r.arn for r in rules]}},
        }],
    }
    sqs.QueuePolicy(f"{name}-termination", queue_url=queue.url, policy=pulumi.Output.json_dumps(policy), opts=child)
    return TerminationQueue(queue=queue, rules=rules)
