"""Rule build_model: a random-weight Llama model with a real tokenizer, in Hugging Face format."""

from llm_energy.models import build_model
from llm_energy.rulekit import run_rule


def main(sm):
    build_model(sm.output[0], dict(sm.params.architecture), seed=sm.params.seed)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
