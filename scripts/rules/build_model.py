"""Rule build_model: a random-weight model of the configured architecture with a real tokenizer."""

from llm_energy.models.build import build_model
from llm_energy.pipeline.rulekit import run_rule


def main(sm):
    build_model(sm.output[0], dict(sm.params.architecture), seed=sm.params.seed, dtype=sm.params.dtype)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
