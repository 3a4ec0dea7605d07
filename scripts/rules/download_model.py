"""Rule download_model: a hub model into models_dir (offline: one line says what to place where)."""

from llm_energy.models.build import download_model
from llm_energy.pipeline.rulekit import run_rule


def main(sm):
    download_model(sm.output[0], sm.params.hub["hub_id"], sm.params.hub["revision"])


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
