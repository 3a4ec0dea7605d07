"""What every stage shares: the config and its schema, the plan Snakemake reads before any job, what a
cell is (cells, point roles), the hardware slug, files written whole (io), rule-script glue
(rulekit), the run's manifest and the stale-lock check after kill -9.
"""
