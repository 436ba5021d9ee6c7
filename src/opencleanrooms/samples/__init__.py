"""Sample tables for the catalog (see generate.py and catalog.toml): an advertiser's customers (Parquet) and a
publisher's impressions (CSV) with overlapping user ids, for the demo accounts 111111111111 and 222222222222."""
