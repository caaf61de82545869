"""`emblens fleet`: the same rules over the logs of many replicas (a folder per replica, a bundle
per replica), each replica analysed on its own by `diagnose.run` in a worker, and one report of
the root causes across the fleet.

    replicas ─► tasks (one per replica, a process pool or Ray) ─► rows ─► Parquet tables ─► fleet report

- `replicas`: what a replica is (one level of the tree by default, or `--replica '{ns}/{pod}/**'`);
- `task`: one replica analysed, turned into rows (findings, the replica's coverage, its failing
  requests by minute, its unexplained error lines): only rows come back, never an event table;
- `engines`: serial, a local process pool (the default), Ray;
- `tables`: the rows written as Parquet (`findings.parquet`, `replicas.parquet`, ...), in parts
  as they come, so that the driver's memory does not grow with the fleet;
- `report`: the fleet report (text, markdown, JSON, HTML), read back from those tables.
"""
