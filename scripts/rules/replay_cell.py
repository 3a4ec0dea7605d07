"""Rule replay_cell: serve a seeded sample of one workload with the cell's stack, metered (replay.runs
times); writes only what it metered (validate_cell compares it with the estimates).

The body runs under the ``__main__`` guard because vLLM starts worker processes.
"""

from llm_energy.estimates.replay import replay_cell
from llm_energy.pipeline.rulekit import run_rule


def main(sm):
    # What the job reads is its params (llm_energy.pipeline.config.job_params); sm.config, validated by the
    # Snakefile, gives the model only.
    w = sm.wildcards
    replay_cell(sm.config, params=sm.params.job, hardware=w.hardware, model=w.model, variant=w.variant,
                decoding=w.decoding,
                model_dir=sm.input.model, profiles={w.workload: sm.input.profile},
                measurements=sm.input.measurements, out=sm.output[0], draft_dir=sm.input.get("draft"))


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
