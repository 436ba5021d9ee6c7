"""Tags on the caller's own resources, addressed by ARN.

Only the resource's owner (the account in its ARN, which must be the caller's) can tag it; any other ARN, like an
unknown one, is ResourceNotFoundException. Each resource family says here how to find its resources.
"""

from __future__ import annotations

from collections.abc import Callable

from opencleanrooms.services import arns, errors, locks
from opencleanrooms.services.context import RequestContext
from opencleanrooms.services.registry import operation
from opencleanrooms.storage import tags as store

MAX_TAGS_PER_RESOURCE = 50
RESERVED_PREFIX = "aws:"

# ARN resource type -> (ResourceNotFoundException resourceType, exists(conn, ctx, ids)): filled by services.wiring
# from the families that own each kind of resource.
RESOLVERS: dict[str, tuple[str, Callable]] = {}


@operation("TagResource")
def tag_resource(ctx: RequestContext, params: dict) -> dict:
    arn, new_tags = params["resourceArn"], params["tags"]
    _check_keys(new_tags, "tags")
    with ctx.db.write(locks=[locks.resource(arn)]) as conn:  # the count, and delete-then-insert of a key
        _require_owned(conn, ctx, arn)
        _check_count(store.get(conn, arn) | new_tags)
        store.put(conn, arn, new_tags)
    return {}


def check_new_resource_tags(tags: dict) -> None:
    """The tag rules for a resource's `tags` at creation, the same as TagResource applies."""
    _check_keys(tags, "tags")
    _check_count(tags)


@operation("UntagResource")
def untag_resource(ctx: RequestContext, params: dict) -> dict:
    arn, keys = params["resourceArn"], params["tagKeys"]
    _check_keys(dict.fromkeys(keys), "tagKeys")
    with ctx.db.write(locks=[locks.resource(arn)]) as conn:
        _require_owned(conn, ctx, arn)
        store.remove(conn, arn, list(keys))
    return {}


@operation("ListTagsForResource")
def list_tags_for_resource(ctx: RequestContext, params: dict) -> dict:
    arn = params["resourceArn"]
    with ctx.db.read() as conn:
        _require_owned(conn, ctx, arn)
        return {"tags": store.get(conn, arn)}


def _require_owned(conn, ctx: RequestContext, arn: str) -> None:
    parsed = arns.parse(arn)
    resolver = RESOLVERS.get(parsed.resource_type) if parsed else None
    resource_type = resolver[0] if resolver else "COLLABORATION"
    if (
        parsed is None
        or resolver is None
        or parsed.region != ctx.region
        or parsed.account_id != ctx.account_id
        or not resolver[1](conn, ctx, parsed.resource_path)
    ):
        raise errors.not_found(f"Resource {arn} not found.", arn, resource_type)


def _check_count(tags: dict) -> None:
    if len(tags) > MAX_TAGS_PER_RESOURCE:
        raise errors.validation(f"A resource can have at most {MAX_TAGS_PER_RESOURCE} tags; this request would "
                                f"leave {len(tags)}.", field="tags")


def _check_keys(tags: dict, field: str) -> None:
    for key in tags:
        if key.lower().startswith(RESERVED_PREFIX):
            raise errors.validation(f"Tag keys starting with '{RESERVED_PREFIX}' are reserved for system use: {key}",
                                    field=field)

