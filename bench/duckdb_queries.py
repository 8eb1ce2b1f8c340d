"""Runs the query benchmark's queries with DuckDB over auditum's Parquet files.

Usage: python3 bench/duckdb_queries.py SPEC.json
SPEC: {"batches": DIR, "repeat": N, "queries": [{"name", "sql", "params"}], "once": [{"name", "sql", "params"}],
       "exports": [{"name", "sql", "params", "out", "repeat" (optional, else export_repeat)}]}
Prints JSON: {name: {"ms": [each run], "rows": n}}; the "once" queries (different random needles)
run one time each, after the repeated ones. Footer metadata is cached across runs
(parquet_metadata_cache), so repeated runs are warm, like auditum's footer cache. Query results
are materialised inside DuckDB (CREATE TEMP TABLE … AS), every column, without the cost of
converting rows to Python objects.
"""
import json
import sys
import time

import duckdb

spec = json.load(open(sys.argv[1]))
con = duckdb.connect()
con.execute("SET parquet_metadata_cache = true")
con.execute(
    f"CREATE VIEW events AS SELECT * FROM read_parquet('{spec['batches']}/**/*.parquet', hive_partitioning = true)"
)
results = {}
for query in spec["queries"]:
    runs, rows = [], 0
    for _ in range(spec["repeat"]):
        started = time.perf_counter()
        con.execute(f"CREATE OR REPLACE TEMP TABLE result AS {query['sql']}", query["params"])
        runs.append((time.perf_counter() - started) * 1000)
        rows = con.execute("SELECT count(*) FROM result").fetchone()[0]
    results[query["name"]] = {"ms": runs, "rows": rows}
for query in spec.get("once", []):
    started = time.perf_counter()
    con.execute(f"CREATE OR REPLACE TEMP TABLE result AS {query['sql']}", query["params"])
    elapsed = (time.perf_counter() - started) * 1000
    rows = con.execute("SELECT count(*) FROM result").fetchone()[0]
    results[query["name"]] = {"ms": [elapsed], "rows": rows}
for export in spec["exports"]:
    runs, rows = [], 0
    for _ in range(export.get("repeat", spec.get("export_repeat", 1))):
        started = time.perf_counter()
        con.execute(f"COPY ({export['sql']}) TO '{export['out']}' (FORMAT JSON)", export["params"])
        runs.append((time.perf_counter() - started) * 1000)
    rows = con.execute(f"SELECT count(*) FROM ({export['sql']})", export["params"]).fetchone()[0]
    results[export["name"]] = {"ms": runs, "rows": rows}
print(json.dumps(results))
