"""Writes the sample tables next to this file, deterministically (same rows on every run):

- `customers.parquet`, an advertiser's customers (account 111111111111): 300 rows, user ids u00001..u00300;
- `impressions.csv`, a publisher's ad impressions (account 222222222222): 500 rows; each of the user ids
  u00151..u00450 appears at least once, so exactly 150 users (u00151..u00300) appear in both tables.

Run `python -m opencleanrooms.samples.generate` to write them again (in this directory, or `--out DIR`).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import os
import random

SEED = 20220217
CUSTOMERS = 300
IMPRESSIONS = 500
SEGMENTS = ["sports", "travel", "tech", "home", "fashion"]
AGE_BANDS = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
CAMPAIGNS = [f"cmp-{n:02d}" for n in range(1, 7)]


def customers(rng: random.Random) -> list[tuple]:
    rows = []
    start = dt.date(2021, 1, 1)
    for n in range(1, CUSTOMERS + 1):
        user_id = f"u{n:05d}"
        email_hash = hashlib.sha256(f"{user_id}@example.com".encode()).hexdigest()
        signup = start + dt.timedelta(days=rng.randrange(0, 3 * 365))
        value = round(rng.lognormvariate(4.5, 0.8), 2)
        rows.append((user_id, email_hash, rng.choice(SEGMENTS), rng.choice(AGE_BANDS), signup, value))
    return rows


def impressions(rng: random.Random) -> list[tuple]:
    rows = []
    start = dt.datetime(2024, 3, 1)
    users = [f"u{n:05d}" for n in range(151, 451)]
    for i in range(IMPRESSIONS):
        user_id = users[i] if i < len(users) else rng.choice(users)  # every user at least once
        when = start + dt.timedelta(seconds=rng.randrange(0, 14 * 86400))
        clicks = rng.choices([0, 1, 2, 3], weights=[80, 15, 4, 1])[0]
        spend = round(rng.uniform(0.05, 2.5), 4)
        rows.append((user_id, rng.choice(CAMPAIGNS), when, clicks, spend))
    rows.sort(key=lambda r: (r[2], r[0]))
    return rows


def write(out_dir: str) -> None:
    import duckdb

    rng = random.Random(SEED)
    customer_rows = customers(rng)
    impression_rows = impressions(rng)
    with duckdb.connect(":memory:") as con:
        con.execute("CREATE TABLE customers (user_id VARCHAR, email_hash VARCHAR, segment VARCHAR, "
                    "age_band VARCHAR, signup_date DATE, lifetime_value DOUBLE)")
        con.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)", customer_rows)
        target = os.path.join(out_dir, "customers.parquet").replace("'", "''")
        con.execute(f"COPY (SELECT * FROM customers ORDER BY user_id) TO '{target}' "
                    "(FORMAT parquet, COMPRESSION zstd)")
    with open(os.path.join(out_dir, "impressions.csv"), "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["user_id", "campaign_id", "impression_time", "clicks", "spend"])
        for user_id, campaign, when, clicks, spend in impression_rows:
            writer.writerow([user_id, campaign, when.strftime("%Y-%m-%d %H:%M:%S"), clicks, f"{spend:.4f}"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)), help="output directory")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    write(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
