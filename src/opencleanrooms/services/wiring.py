"""The checks that cross resource families, wired in this one place.

A family must not change another's behaviour by editing its lists when imported; instead each family exposes its
checks as functions, and `wire` (called once by `registry.load_all`, after every service module is imported)
says which family's check guards which operation of another:

- DeleteMembership refuses while the membership still has associations (of tables or of audience models),
  analysis templates or privacy budget templates;
- DeleteConfiguredTable (and deleting its analysis rule) refuses while an association uses the table (rule);
- the tag operations resolve every taggable ARN for its owner only;
- protected queries read, and schemas show, intermediate tables besides associations; association and intermediate table names share
  one namespace per collaboration; deleting an association marks intermediate tables populated from it
  BASE_TABLE_REMOVED.
"""

from __future__ import annotations

from opencleanrooms.services import (
    analysis_templates,
    audience_model_associations,
    collaborations,
    configured_tables,
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
                                         intermediate_tables.membership_in_use]
    protected_queries.EXTRA_TABLES[:] = [intermediate_tables.query_tables]
    schemas.EXTRA_SCHEMAS[:] = [intermediate_tables.schemas_of]
    table_associations.NAME_CHECKS[:] = [intermediate_tables.name_in_use]
    table_associations.DELETE_HOOKS[:] = [intermediate_tables.base_table_removed]
    configured_tables.DELETE_CHECKS[:] = [table_associations.table_in_use]
    configured_tables.RULE_DELETE_CHECKS[:] = [table_associations.table_rule_in_use]
    tags.RESOLVERS.clear()
    tags.RESOLVERS.update({
        "collaboration": ("COLLABORATION", collaborations.owns_collaboration),
        # analysis template and audience model association ARNs share the `membership` resource type with
        # membership ARNs
        "membership": ("MEMBERSHIP", audience_model_associations.with_associations(
            analysis_templates.with_templates(memberships.owns_membership))),
        "configuredtable": (configured_tables.RESOURCE_TYPE, configured_tables.owns_table),
        "configuredtableassociation": (table_associations.RESOURCE_TYPE, table_associations.owns_association),
        "privacybudgettemplate": (privacy_budgets.RESOURCE_TYPE, privacy_budgets.owns_template),
    })

