"""Rule table: one table of the paper (the wildcard names it), from the inputs its registry entry names."""

from llm_energy.paper.registry import write
from llm_energy.paper.tables import TableFiles
from llm_energy.pipeline.rulekit import run_rule


def main(sm):
    write(sm.wildcards.table, dict(sm.input.items()), sm.params.settings, TableFiles(sm.output.tex, sm.output.csv))


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
