"""Use-cases, one module each: what a command does, as a library function that returns what happened.

The CLI only turns options into arguments and outcomes into text and exit codes; a library caller calls
the same functions with the same settings objects (:mod:`dbcost.config`).

* :mod:`~dbcost.jobs.fetch` — one query, every page, to memory, files or sinks (``dbcost fetch``);
* :mod:`~dbcost.jobs.backfill` — backfill and sync through the pipeline (``dbcost backfill``/``sync``);
* :mod:`~dbcost.jobs.export` — the store's records as JSONL, CSV or Parquet;
* :mod:`~dbcost.jobs.attribute` — a month's database spend per team, cluster and category;
* :mod:`~dbcost.jobs.resources` — what each database resource cost over the last 14 days, and who owns it
  (``dbcost resources``: GetCostAndUsageWithResources);
* :mod:`~dbcost.jobs.quota` — quota check, gate and notification;
* :mod:`~dbcost.jobs.advise` — right-sizing advisories, their state, and their events on change;
* :mod:`~dbcost.jobs.inventory` — the databases as RDS, DynamoDB and ElastiCache describe them (``--inventory``);
* :mod:`~dbcost.jobs.report` — the report's data from the store, rendered;
* :mod:`~dbcost.jobs.metrics` — the Prometheus textfile;
* :mod:`~dbcost.jobs.demo` — the whole job against the embedded emulator.

Nothing is imported here: ``import dbcost.jobs.fetch`` loads what fetch needs and nothing else.
"""
