"""Rule measure_cell: load the model once, sweep the cell's points, write one row per point and repeat.

The body runs under the ``__main__`` guard because vLLM starts worker processes.
"""

from llm_energy import config as config_mod
from llm_energy.cell import measure_cell
from llm_energy.rulekit import run_rule


def main(sm):
    cfg = config_mod.validate(sm.config)
    w = sm.wildcards
    measure_cell(cfg, hardware=w.hardware, model=w.model, variant=w.variant, decoding=w.decoding,
                 model_dir=sm.input.model, out=sm.output.table, draft_dir=sm.input.get("draft"),
                 prompt_file=sm.input.book if "book" in sm.input.keys() else None)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
