"""Who pays for what in a collaboration.

The creator decides, per cost type, which single member is responsible; when nobody is named, the member with the
type's default ability pays (the member who can query pays for queries and ML model training and inference; the
member who can run jobs pays for jobs). A member must then accept exactly that configuration when joining.
"""

from __future__ import annotations

from dataclasses import dataclass

from opencleanrooms.services.errors import invalid_configuration


@dataclass(frozen=True)
class CostType:
    label: str
    path: tuple[str, ...]  # where the type sits in PaymentConfiguration
    default_ability: str | None  # who pays when the creator names nobody
    always_present: bool  # queryCompute is required in every PaymentConfiguration


COST_TYPES = (
    CostType("query compute", ("queryCompute",), "CAN_QUERY", True),
    CostType("job compute", ("jobCompute",), "CAN_RUN_JOB", False),
    CostType("model training", ("machineLearning", "modelTraining"), "CAN_QUERY", False),
    CostType("model inference", ("machineLearning", "modelInference"), "CAN_QUERY", False),
    CostType("synthetic data generation", ("machineLearning", "syntheticDataGeneration"), None, False),
)


@dataclass(frozen=True)
class Participant:
    account_id: str
    abilities: list[str]
    payment: dict | None  # PaymentConfiguration as the creator specified it for this member
    field: str  # input path, for error messages


def assign(participants: list[Participant]) -> dict[str, dict]:
    """Each participant's effective PaymentConfiguration; raises ValidationException on conflicting rules."""
    query_members = [p for p in participants if "CAN_QUERY" in p.abilities]
    if len(query_members) > 1:
        raise invalid_configuration("Only one member can have the CAN_QUERY ability in a collaboration.")
    effective: dict[str, dict] = {p.account_id: {} for p in participants}
    for cost in COST_TYPES:
        specified = {p.account_id: flag for p in participants if (flag := _flag(p.payment, cost.path)) is not None}
        payers = [account for account, flag in specified.items() if flag]
        if len(payers) > 1:
            raise invalid_configuration(f"Only one member can be responsible for {cost.label} costs.")
        default = next((p.account_id for p in participants if cost.default_ability in p.abilities), None)
        if not payers and default is not None and specified.get(default) is False:
            raise invalid_configuration(
                f"The member with the {cost.default_ability} ability must be responsible for {cost.label} costs "
                "unless another member is configured to pay for them."
            )
        if not (cost.always_present or specified or (cost.path == ("jobCompute",) and default is not None)):
            continue
        payer = payers[0] if payers else default
        for account, config in effective.items():
            _set_flag(config, cost.path, account == payer)
    return effective


def check_acceptance(effective: dict, given: dict | None, abilities: list[str], *, required: bool) -> None:
    """A joining member's paymentConfiguration must state exactly what the creator configured for it."""
    responsible = [cost for cost in COST_TYPES if _flag(effective, cost.path)]
    if given is None:
        if required and responsible and "CAN_QUERY" not in abilities:
            raise invalid_configuration(
                f"paymentConfiguration is required: this member is responsible for {responsible[0].label} costs."
            )
        return
    for cost in COST_TYPES:
        flag = _flag(given, cost.path)
        if flag is not None and flag != bool(_flag(effective, cost.path)):
            expected = "is" if _flag(effective, cost.path) else "is not"
            raise invalid_configuration(
                f"isResponsible for {cost.label} must match the collaboration's payment configuration: "
                f"this member {expected} responsible for {cost.label} costs."
            )


def _flag(config: dict | None, path: tuple[str, ...]) -> bool | None:
    node = config
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node.get("isResponsible") if isinstance(node, dict) else None


def _set_flag(config: dict, path: tuple[str, ...], value: bool) -> None:
    for key in path:
        config = config.setdefault(key, {})
    config["isResponsible"] = value

