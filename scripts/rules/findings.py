"""Rule findings: every finding of the paper against this run, with a computed verdict
(paper/findings.{md,csv,tex}; criteria and verdict rules: llm_energy/paper/criteria.py)."""

import logging

import pandas as pd

from llm_energy.paper.findings import findings_markdown, findings_table, findings_tex
from llm_energy.pipeline.io import atomic_path, write_text
from llm_energy.pipeline.rulekit import run_rule

log = logging.getLogger("llm_energy.paper.findings")


def main(sm):
    measurements = pd.concat([pd.read_parquet(p) for p in sm.input.measurements], ignore_index=True)
    estimates = pd.read_parquet(sm.input.estimates)
    validation = [pd.read_parquet(p) for p in (sm.input.get("validation") or [])]
    table = findings_table(measurements, estimates, pd.read_parquet(sm.input.savings),
                           sm.params.fixed_input, sm.params.fixed_output,
                           pd.concat(validation, ignore_index=True) if validation else None)
    with atomic_path(sm.output.csv) as tmp:
        table.to_csv(tmp, index=False)
    write_text(findings_markdown(table), sm.output.md)
    write_text(findings_tex(table), sm.output.tex)
    for r in table.itertuples():
        log.info("%s: %s (%s)", r.verdict, r.finding, r.hardware)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
