"""Storage for protected jobs (PySpark): the job rows and who may see each. Created by migration 7.

Jobs are kept like protected queries (storage/protected_queries.py): the output-shaped fields in `doc`, what the
runner needs (the artifacts' locations and approved hashes, the tables' catalog references, the destinations) in
`spec`, never shown; visibility is a row per (membership, job) in `protected_job_views` (the job's runner and its
result receivers); status changes are conditional updates, so exactly one runner claims a job and a finished job
never changes again; a running job's runner renews `lease_until`. The functions the runner calls have the same
names and meanings as the query store's, so one runner serves both.
"""

from __future__ import annotations

import sqlalchemy as sa

from opencleanrooms.storage import runs
from opencleanrooms.storage.runs import ACTIVE_STATUSES  # noqa: F401  (part of this store's interface)

FINAL_STATUSES = ("SUCCESS", "FAILED", "CANCELLED")

protected_jobs = runs.run_table(
    "protected_jobs", sa.Index("ix_protected_jobs_membership_status", "membership_id", "status"))
protected_job_views = runs.view_table("protected_job_views", protected_jobs, "job_seq")

TABLES: list[sa.Table] = [protected_jobs, protected_job_views]

_runs = runs.Runs(protected_jobs, protected_job_views, "job_seq")
insert = _runs.insert
get_visible = _runs.get_visible
get = _runs.get
page_for_membership = _runs.page_for_membership
count_active = _runs.count_active
transition = _runs.transition
claimable = _runs.claimable
renew_leases = _runs.renew_leases
abandoned = _runs.abandoned
