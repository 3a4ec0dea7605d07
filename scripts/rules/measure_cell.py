"""Rule measure_cell: load the model once, sweep the cell's points, write one row per point and repeat.

The body runs under the ``__main__`` guard because vLLM starts worker processes.
"""

from llm_energy.measurement.cell import CellParams, measure_cell
from llm_energy.pipeline.rulekit import run_rule


def main(sm):
    # The points and settings the Snakefile computed for this cell (its params); sm.config is the
    # config the Snakefile already validated (defaults filled), read here for the model only.
    w, p = sm.wildcards, sm.params
    params = CellParams.of(p.points, p.measurement, p.decoding, p.online, p.prompts)
    measure_cell(sm.config, hardware=w.hardware, model=w.model, variant=w.variant, decoding=w.decoding,
                 params=params, model_dir=sm.input.model, out=sm.output.table, draft_dir=sm.input.get("draft"),
                 prompt_file=sm.input.get("book") or sm.input.get("texts"))


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
