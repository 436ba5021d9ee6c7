"""The checks that cross resource families, wired in this one place.

A family must not change another's behaviour by editing its lists when imported; instead each family exposes its
checks as functions, and `wire` (called once by `registry.load_all`, after every service module is imported)
says which family's check guards which operation of another:

- DeleteMembership refuses while the membership still has associations (of tables or of audience models),
  analysis templates, privacy budget templates, intermediate tables, ID mapping tables or ID namespace
  associations;
- DeleteConfiguredTable (and deleting its analysis rule) refuses while an association uses the table (rule);
- configured table associations, intermediate tables and ID mapping tables share the collaboration's relation
  names, and schemas list intermediate and ID mapping tables after the configured table associations;
- protected queries read intermediate tables and ID mapping tables besides associations, SQL analysis templates
  ID mapping tables; deleting an association or an ID mapping table marks intermediate tables populated from it
  BASE_TABLE_REMOVED;
- the tag operations resolve every taggable ARN for its owner only.
"""

from __future__ import annotations

from opencleanrooms.services import (
    analysis_templates,
    audience_model_associations,
    collaborations,
    configured_tables,
    id_mapping_tables,
    id_namespace_associations,
    intermediate_tables,
    memberships,
    privacy_budgets,
    protected_queries,
    schemas,
    table_associations,
    tags,
)


def wire() -> None:
    memberships.SUBRESOURCE_CHECKS[:] = [table_associations.membership_in_use,
                                         analysis_templates.membership_in_use, privacy_budgets.membership_in_use,
                                         audience_model_associations.membership_in_use,
                                         intermediate_tables.membership_in_use,
                                         id_mapping_tables.membership_in_use,
                                         id_namespace_associations.membership_in_use]
    protected_queries.EXTRA_TABLES[:] = [intermediate_tables.query_tables, id_mapping_tables.query_tables]
    schemas.OTHER_RELATIONS[:] = [intermediate_tables.Relations, id_mapping_tables.Relations]
    analysis_templates.OTHER_RELATIONS[:] = [id_mapping_tables.relation_names]
    table_associations.NAME_CHECKS[:] = [intermediate_tables.name_in_use, id_mapping_tables.name_in_use]
    table_associations.DELETE_HOOKS[:] = [intermediate_tables.base_table_removed]
    id_mapping_tables.DELETE_HOOKS[:] = [intermediate_tables.base_table_removed]
    configured_tables.DELETE_CHECKS[:] = [table_associations.table_in_use]
    configured_tables.RULE_DELETE_CHECKS[:] = [table_associations.table_rule_in_use]
    tags.RESOLVERS.clear()
    tags.RESOLVERS.update({
        "collaboration": ("COLLABORATION", collaborations.owns_collaboration),
        # analysis template and audience model association ARNs share the `membership` resource type with
        # membership ARNs, as do ID namespace associations and ID mapping tables
        "membership": ("MEMBERSHIP", audience_model_associations.with_associations(
            analysis_templates.with_templates(_any_of(memberships.owns_membership,
                                                      id_namespace_associations.owns_association,
                                                      id_mapping_tables.owns_table)))),
        "configuredtable": (configured_tables.RESOURCE_TYPE, configured_tables.owns_table),
        "configuredtableassociation": (table_associations.RESOURCE_TYPE, table_associations.owns_association),
        "privacybudgettemplate": (privacy_budgets.RESOURCE_TYPE, privacy_budgets.owns_template),
    })


def _any_of(*resolvers):
    """ARNs under `membership/<id>/...`: the membership itself, or one of its sub-resources."""
    return lambda conn, ctx, ids: any(resolve(conn, ctx, ids) for resolve in resolvers)
