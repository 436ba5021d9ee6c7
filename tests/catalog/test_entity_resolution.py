"""The local Entity Resolution entries: validation of catalog-file entries, and storage by ARN."""

from __future__ import annotations

import pytest

from opencleanrooms.catalog import entity_resolution as er
from opencleanrooms.catalog.errors import InvalidEntry
from opencleanrooms.storage.database import Database

NS = "arn:aws:entityresolution:us-east-1:111111111111:idnamespace/customers"
NS2 = "arn:aws:entityresolution:eu-west-1:222222222222:idnamespace/visitors"
WF = "arn:aws:entityresolution:us-east-1:111111111111:idmappingworkflow/w"


def test_namespace_entries_are_validated():
    ns = er.make_namespace({"arn": NS, "type": "SOURCE", "database": "Advertiser", "table": "Customers",
                            "id_column": "User_ID", "key_columns": ["Email", "zip"]})
    assert (ns.account_id, ns.region, ns.type) == ("111111111111", "us-east-1", "SOURCE")
    assert (ns.database, ns.table, ns.id_column, ns.key_columns) == ("advertiser", "customers", "user_id",
                                                                      ("email", "zip"))
    assert ns.missing() == []
    assert er.make_namespace({"arn": NS2, "type": "TARGET"}).missing() == ["database", "table", "id_column",
                                                                           "key_columns"]
    for bad in ({"arn": "arn:aws:s3:::x", "type": "SOURCE"}, {"arn": NS, "type": "BOTH"}, {"arn": NS},
                {"arn": NS, "type": "SOURCE", "database": "d"}, {"arn": NS, "type": "SOURCE", "key_columns": "k"},
                {"arn": NS, "type": "SOURCE", "key_columns": ["k", "K"]}, {"arn": NS, "type": "SOURCE", "x": 1},
                {"arn": NS, "type": "SOURCE", "database": "a/b", "table": "t"}):
        with pytest.raises(InvalidEntry):
            er.make_namespace(bad)


def test_workflow_entries_are_validated():
    wf = er.make_workflow({"arn": WF, "source": NS, "target": NS2})
    assert (wf.account_id, wf.region, wf.source_arn, wf.target_arn) == ("111111111111", "us-east-1", NS, NS2)
    for bad in ({"arn": NS, "source": NS, "target": NS2}, {"arn": WF, "source": NS, "target": NS},
                {"arn": WF, "source": WF, "target": NS2}, {"arn": WF, "source": NS}):
        with pytest.raises(InvalidEntry):
            er.make_workflow(bad)


def test_entries_are_stored_and_replaced_by_arn(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.migrate()
    with db.write() as conn:
        er.put_namespace(conn, er.make_namespace({"arn": NS, "type": "SOURCE"}))
        er.put_namespace(conn, er.make_namespace({"arn": NS, "type": "TARGET", "database": "d", "table": "t",
                                                  "id_column": "i", "key_columns": ["k"]}))
        er.put_workflow(conn, er.make_workflow({"arn": WF, "source": NS, "target": NS2}))
    with db.read() as conn:
        ns = er.get_namespace(conn, NS)
        assert (ns.type, ns.database, ns.key_columns) == ("TARGET", "d", ("k",))
        assert er.get_namespace(conn, NS2) is None
        assert er.get_workflow(conn, WF).target_arn == NS2
        assert er.get_workflow(conn, WF + "x") is None
    db.dispose()
