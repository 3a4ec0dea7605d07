"""Rule serve_cell: the rate sweep of an online cell (online.rates): the replay sample of online.trace
sent at each Poisson rate; a row per rate (latency percentiles, steady-state energy) and per request.

The body runs under the ``__main__`` guard because vLLM starts worker processes.
"""

from llm_energy.online.sweep import serve_cell
from llm_energy.pipeline.rulekit import run_rule


def main(sm):
    # What the job reads is its params (llm_energy.pipeline.config.job_params); sm.config, validated by the
    # Snakefile, gives the model only.
    w = sm.wildcards
    serve_cell(sm.config, params=sm.params.job, hardware=w.hardware, model=w.model, variant=w.variant,
               decoding=w.decoding,
               model_dir=sm.input.model, profile=sm.input.profile, out=sm.output.table,
               requests_out=sm.output.requests, measurements=sm.input.measurements)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
