"""ARNs and ids for Clean Rooms resources: the owner's account and the region the request was served in."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

PARTITION = "aws"
_ARN = re.compile(r"^arn:(?P<partition>[\w-]+):cleanrooms:(?P<region>[\w-]+):(?P<account>\d{12}):(?P<resource>.+)$")


def new_id() -> str:
    return str(uuid.uuid4())


def collaboration_arn(region: str, account_id: str, collaboration_id: str) -> str:
    return f"arn:{PARTITION}:cleanrooms:{region}:{account_id}:collaboration/{collaboration_id}"


def membership_arn(region: str, account_id: str, membership_id: str) -> str:
    return f"arn:{PARTITION}:cleanrooms:{region}:{account_id}:membership/{membership_id}"


def configured_table_arn(region: str, account_id: str, configured_table_id: str) -> str:
    return f"arn:{PARTITION}:cleanrooms:{region}:{account_id}:configuredtable/{configured_table_id}"


def configured_table_association_arn(region: str, account_id: str, membership_id: str, association_id: str) -> str:
    """The form the model's ConfiguredTableAssociationArn pattern takes (CTA outputs)."""
    return (f"arn:{PARTITION}:cleanrooms:{region}:{account_id}:configuredtableassociation/"
            f"{membership_id}/{association_id}")


def membership_resource_arn(region: str, account_id: str, membership_id: str, kind: str, resource_id: str) -> str:
    """`membership/<id>/<kind>/<id>`: analysis templates, and associations where the model wants this form
    (SchemaResourceArn, BudgetedResourceArn)."""
    return f"arn:{PARTITION}:cleanrooms:{region}:{account_id}:membership/{membership_id}/{kind}/{resource_id}"


@dataclass(frozen=True)
class ParsedArn:
    region: str
    account_id: str
    resource_type: str  # "collaboration", "membership", ...
    resource_path: tuple[str, ...]  # the ids after the type


def parse(arn: str) -> ParsedArn | None:
    match = _ARN.match(arn)
    if not match or match["partition"] != PARTITION:
        return None
    resource_type, *path = match["resource"].split("/")
    return ParsedArn(match["region"], match["account"], resource_type, tuple(path))
