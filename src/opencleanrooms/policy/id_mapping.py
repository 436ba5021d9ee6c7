"""The managed ID_MAPPING_TABLE analysis rule: how a query may read an ID mapping table.

An ID mapping table is no standalone relation: it only translates one member's IDs into another's, so a query
joins it between their tables (`a JOIN idmt ON a.id = idmt.sourceid JOIN b ON b.id = idmt.targetid`) and the
query's other tables decide the rule type (AGGREGATION, LIST or CUSTOM), enforced as for any query of that type
(`inherit`, called where the type is decided). What the managed rule adds (`enforce`, on the qualified query):

- the table is joined INNER, or LEFT/RIGHT with it on the inner side (`t LEFT JOIN idmt`, `idmt RIGHT JOIN t`);
  never FULL, CROSS, implicit (comma), SEMI/ANTI, nor inside a parenthesized join;
- its columns appear only as `=` operands against a column of another table of the same SELECT, in JOIN ... ON
  conditions combined with AND only (an OR, a literal or a CTE column could replace the overlap with a guess);
  a column the rule lists in dimensionColumns may also be used anywhere else;
- requireOverlap: each listed column is joined that way, so only the IDs both members hold are ever read.

Differential privacy is not supported with ID mapping tables (refused, INVALID_RESOURCE).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, build_scope

from opencleanrooms.policy.lineage import scope_nodes
from opencleanrooms.policy.model import TableInfo
from opencleanrooms.policy.parse import fragment, reject

RULE_TYPE = "ID_MAPPING_TABLE"


def is_mapping(info: TableInfo) -> bool:
    return info.rule_type == RULE_TYPE


def inherit(found: Mapping[str, TableInfo], rule_type: str) -> dict[str, TableInfo]:
    """The tables with each ID mapping table's rule said in the vocabulary of the inherited `rule_type`, so that
    the rule's module treats its columns as what the managed rule makes them: join columns (never aggregated),
    dimension columns selectable and filterable (AGGREGATION dimensions, LIST list columns)."""
    others = [info for info in found.values() if not is_mapping(info)]
    if any((info.rule or {}).get("differentialPrivacy") for info in others):
        reject("Differential privacy queries cannot read ID mapping tables on this server: query the tables "
               "without the ID mapping table, or use tables without differential privacy.", "INVALID_RESOURCE")
    tables = dict(found)
    for name, info in found.items():
        if not is_mapping(info):
            continue
        rule = dict(info.rule or {})
        dimensions = list(rule.get("dimensionColumns") or [])
        if rule_type == "AGGREGATION":
            functions = [set((other.rule or {}).get("scalarFunctions") or []) for other in others]
            rule.update(aggregateColumns=[], outputConstraints=[],
                        scalarFunctions=sorted(set.intersection(*functions)) if functions else [])
        elif rule_type == "LIST":
            rule.update(listColumns=dimensions)
        tables[name] = TableInfo(name=info.name, owner_account_id=info.owner_account_id, columns=info.columns,
                                 rule_type=info.rule_type, rule=rule, unavailable=info.unavailable)
    return tables


def enforce(tree: exp.Expression, tables: Mapping[str, TableInfo]) -> None:
    """Refuse a qualified query that reads an ID mapping table against its managed rule (MALFORMED_QUERY)."""
    mapping = {name for name, info in tables.items() if is_mapping(info)}
    if not mapping:
        return
    root = build_scope(tree)
    if root is None:
        reject("The query's structure cannot be analysed.")
    for scope in root.traverse():
        if isinstance(scope.expression, exp.Select):
            _check_scope(scope, mapping, tables)


def _table_of(scope: Scope, column: exp.Column) -> tuple[exp.Expression | None, Scope | None]:
    """The source a column reads (a Table, or a CTE/derived scope) and the scope it belongs to."""
    current = scope
    while current is not None:
        source = current.sources.get(column.table)
        if source is not None:
            return source, current
        current = current.parent
    return None, None


def _mapping_name(source, mapping: set[str]) -> str | None:
    return source.name if isinstance(source, exp.Table) and source.name in mapping else None


def _check_scope(scope: Scope, mapping: set[str], tables: Mapping[str, TableInfo]) -> None:
    select = scope.expression
    present = {alias: source.name for alias, source in scope.sources.items()  # SEMI-joined ones are not "selected"
               if isinstance(source, exp.Table) and source.name in mapping}
    if present:
        _check_joins(select, mapping)
    joined: set[tuple[str, str]] = set()  # (alias, column) joined with `=` to another table's column
    for node in scope_nodes(scope):
        if not isinstance(node, exp.Column):
            continue
        source, owner = _table_of(scope, node)
        name = _mapping_name(source, mapping)
        if name is None:
            continue
        if owner is scope and _joins_other_table(node, scope, select, mapping):
            joined.add((node.table, node.name))
            continue
        if node.name in ((tables[name].rule or {}).get("dimensionColumns") or []):
            continue
        reject(f"Column `{node.name}` of ID mapping table `{name}` can be used only in JOIN ... ON conditions, "
               f"compared with `=` to a column of another table and combined with AND (`{fragment(node.parent)}`): "
               f"the ID_MAPPING_TABLE rule lists it in no dimensionColumns.")
    for alias, name in sorted(present.items()):
        for constraint in (tables[name].rule or {}).get("queryConstraints") or []:
            for column in (constraint.get("requireOverlap") or {}).get("columns") or []:
                if (alias, column) not in joined:
                    reject(f"ID mapping table `{name}` must be joined on both sides: its rule requires the overlap "
                           f"of columns {', '.join(f'`{c}`' for c in constraint['requireOverlap']['columns'])}, "
                           f"so `{column}` must be joined with `=` to a column of another table in JOIN ... ON "
                           f"(e.g. `a JOIN {name} m ON a.id = m.sourceid JOIN b ON b.id = m.targetid`).")


def _joins_other_table(column: exp.Column, scope: Scope, select: exp.Select, mapping: set[str]) -> bool:
    """Whether `column` is an operand of `x = column` in a JOIN ... ON of `select`, reached through AND only,
    where x is a column of a table (not a CTE or derived table: those could hold guessed values) of the scope
    that is no ID mapping table."""
    equality = column.parent
    while isinstance(equality, exp.Paren):
        equality = equality.parent
    if not isinstance(equality, exp.EQ):
        return False
    other = equality.expression if _unparen(equality.this) is column else equality.this
    other = _unparen(other)
    if not isinstance(other, exp.Column):
        return False
    source = scope.sources.get(other.table)
    if not isinstance(source, exp.Table) or source.name in mapping:
        return False
    node = equality
    while isinstance(node.parent, (exp.And, exp.Paren)):
        node = node.parent
    join = node.parent
    return isinstance(join, exp.Join) and node.arg_key == "on" and join.parent is select


def _unparen(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _check_joins(select: exp.Select, mapping: set[str]) -> None:
    """INNER joins, or LEFT/RIGHT with the ID mapping table on the inner side, read left to right."""
    start = select.args.get("from") or select.args.get("from_")
    operands = [start.this] if start is not None else []
    has = [_holds_mapping(operand, mapping) for operand in operands]
    for join in select.args.get("joins") or []:
        right = _holds_mapping(join.this, mapping)
        left = any(has)
        has.append(right)
        operands.append(join.this)
        if not (left or right):
            continue
        name = sorted(set().union(*(_mapping_names(o, mapping) for o in operands)))[0] if not right \
            else join.this.name
        side, kind, method = (join.side or "").upper(), (join.kind or "").upper(), (join.method or "").upper()
        shown = fragment(join, 80)
        if method or kind not in ("", "INNER", "OUTER") or (not side and kind == "OUTER"):
            reject(f"{' '.join(p for p in (method, side, kind) if p)} JOIN cannot join ID mapping table `{name}`: "
                   f"its rule allows INNER, LEFT or RIGHT joins with ON conditions (`{shown}`).")
        if join.args.get("on") is None:
            reject(f"ID mapping table `{name}` must be joined with an ON condition (`{shown}`).")
        if side == "FULL":
            reject(f"FULL JOIN cannot join ID mapping table `{name}`: the ID mapping table must be on the inner side "
                   f"of every join (`{shown}`).")
        if (side == "LEFT" and left) or (side == "RIGHT" and right):  # the preserved side holds it
            preserved = side.lower()
            reject(f"ID mapping table `{name}` is on the {preserved} side of a {side} JOIN, whose unmatched rows it "
                   f"would keep: the ID mapping table must be on the inner side of every join, as in `t LEFT JOIN "
                   f"{name}` or `{name} RIGHT JOIN t` (`{shown}`).")


def _mapping_names(operand: exp.Expression, mapping: set[str]) -> set[str]:
    if isinstance(operand, exp.Table):
        return {operand.name} & mapping
    if isinstance(operand, exp.Subquery) and not isinstance(operand.this, (exp.Select, exp.SetOperation)):
        return {table.name for table in operand.find_all(exp.Table)} & mapping
    return set()


def _holds_mapping(operand: exp.Expression, mapping: set[str]) -> bool:
    """Whether a FROM/JOIN operand is an ID mapping table (a parenthesized join holding one is refused)."""
    if isinstance(operand, exp.Table):
        return operand.name in mapping
    names = _mapping_names(operand, mapping)
    if names:
        reject(f"ID mapping table `{sorted(names)[0]}` cannot be joined inside a parenthesized join: write the "
               f"joins one after the other (`{fragment(operand, 80)}`).")
    return False
