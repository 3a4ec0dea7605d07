"""Rule fetch_raw: keep the raw file when present, else download it (complete or absent)."""

from llm_energy.pipeline.rulekit import run_rule
from llm_energy.workloads.sources import fetch


def main(sm):
    fetch(sm.output[0], sm.params.url, sm.params.sha256)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
