"""Draws the comparison benchmark's results (target/bench-compare/results.json) as one PNG.

Usage: python3 bench/plot.py RESULTS.json OUT.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

results = json.load(open(sys.argv[1]))
colors = {"auditum": "#2b6cb0", "Postgres 15": "#c05621", "DuckDB": "#718096"}
figure, (ingest_axis, query_axis, storage_axis) = plt.subplots(1, 3, figsize=(15, 5))

labels = ["100 / call", "1000 / call", "1000 / call\nunder query load"]
auditum = [results["ingest"]["100"]["auditum"], results["ingest"]["1000"]["auditum"], results["under_load"]["auditum_events_per_s"]]
postgres = [results["ingest"]["100"]["postgres"], results["ingest"]["1000"]["postgres"], results["under_load"]["postgres_rows_per_s"]]
positions = range(len(labels))
ingest_axis.bar([p - 0.2 for p in positions], auditum, 0.4, label="auditum (durable Append)", color=colors["auditum"])
ingest_axis.bar([p + 0.2 for p in positions], postgres, 0.4, label="Postgres (INSERT, synchronous_commit=on)", color=colors["Postgres 15"])
for p, (ours, theirs) in enumerate(zip(auditum, postgres)):
    ingest_axis.annotate(f"{ours / theirs:.1f}×", (p, max(ours, theirs)), ha="center", va="bottom")
ingest_axis.set_xticks(list(positions), labels)
ingest_axis.set_ylabel("events / s (median)")
ingest_axis.set_title(f"Ingest, {results['in_flight']} calls in flight")
ingest_axis.set_ylim(0, max(auditum + postgres) * 1.35)
ingest_axis.legend(fontsize=8, loc="upper right")

queries = ["needle", "selective"]
systems = [("auditum", "auditum_ms"), ("Postgres 15", "postgres_ms"), ("DuckDB", "duckdb_ms")]
for index, (name, key) in enumerate(systems):
    values = [results["queries"][query][key] for query in queries]
    query_axis.bar([p + (index - 1) * 0.27 for p in range(len(queries))], values, 0.27, label=name, color=colors[name])
query_axis.set_xticks(range(len(queries)), [f"{query}\n({results['queries'][query]['rows']} rows)" for query in queries])
query_axis.set_ylabel("latency, ms (warm median; lower is better)")
query_axis.set_title(f"Queries over {results['events']:,} events")
query_axis.legend(fontsize=8)

storage = results["storage"]
storage_axis.bar(["auditum\n(Parquet + ledger)", "Postgres 15\n(heap + indexes)"], [storage["auditum_bytes_per_event"], storage["postgres_bytes_per_event"]],
                 color=[colors["auditum"], colors["Postgres 15"]])
storage_axis.set_ylabel("bytes per event on disk")
storage_axis.set_title("Storage")
export = results["queries"]["export"]
storage_axis.set_xlabel(f"export of a month ({export['rows']:,} rows, JSON lines): auditum {export['auditum_events_per_s']:,.0f}/s,\n"
                        f"Postgres {export['postgres_events_per_s']:,.0f}/s, DuckDB {export['duckdb_events_per_s']:,.0f}/s", fontsize=8)

figure.suptitle("auditum vs the Postgres audit table vs DuckDB on auditum's files (same machine, same run)")
figure.tight_layout()
figure.savefig(sys.argv[2], dpi=110)
print(f"wrote {sys.argv[2]}")
