"""Rule figure: one figure of the paper (the wildcard names it), from the inputs its registry entry names."""

from llm_energy.paper.figures import FigureFiles
from llm_energy.paper.registry import write
from llm_energy.pipeline.rulekit import run_rule


def main(sm):
    files = FigureFiles(sm.output.pdf, sm.output.png, sm.output.csv, sm.output.tex)
    write(sm.wildcards.figure, dict(sm.input.items()), sm.params.settings, files)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
