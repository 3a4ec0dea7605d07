# Measurement checks: each row marked valid or invalid (with the reason) before any aggregation.


localrules:
    check_cell,


rule check_cell:
    input:
        table=f"results/measurements/{CELL_PATH}.parquet",
        code=package_code("measurement.validation"),
    output:
        table=f"results/checked/{CELL_PATH}.parquet",
        summary=f"results/checked/{CELL_PATH}.json",
    log:
        f"logs/checked/{CELL_PATH}.log",
    benchmark:
        f"results/benchmarks/check_cell/{CELL_PATH}.tsv"
    priority: REPLAY_NEXT
    conda:
        "../../envs/analysis.yaml"
    params:
        validation=VALIDATION,
    script:
        "../../scripts/rules/check_cell.py"


# Replay validation, in two stages so that an estimate can be improved without metering again:
# replay_cell (metered, on this machine, like the cells themselves) serves a seeded sample of one
# workload with its true lengths, replay.runs times, and writes only what it metered; the cheap
# validate_cell compares the binned estimate and the energy model with the same requests. One replay
# job per (cell, workload): a workload added or changed is replayed alone, the others are kept.


localrules:
    validate_cell,


rule replay_cell:
    input:
        unpack(draft_input),
        model=model_dir,
        profile="results/profile/{workload}.parquet",
        # ancient: a re-check after an edit of the validation code never re-runs the metered replay
        # (only the grid's batch size and the shapes of its control points are read from it) ...
        measurements=ancient(f"results/checked/{CELL_PATH}.parquet"),
        # ... while a grid measured again is replayed again, minutes after it as always (not read: the
        # link that re-plans it; through the ancient file alone Snakemake 9 would not re-plan even a
        # replay whose own params changed)
        grid=f"results/measurements/{CELL_PATH}.parquet",
    output:
        f"results/replay/{CELL_PATH}/{{workload}}.parquet",
    log:
        f"logs/replay/{CELL_PATH}/{{workload}}.log",
    benchmark:
        f"results/benchmarks/replay_cell/{CELL_PATH}/{{workload}}.tsv"
    wildcard_constraints:
        hardware=re.escape(HARDWARE),
    priority: REPLAY_NEXT
    conda:
        measure_env
    threads: workflow.cores
    resources:
        gpu=cell_gpus,
    params:
        job=replay_params,
    script:
        "../../scripts/rules/replay_cell.py"


rule validate_cell:
    input:
        replay=cell_replays,
        measurements=f"results/checked/{CELL_PATH}.parquet",
        model=model_dir,
        code=package_code(
            "estimates.replay",
            "modelling.energy_model",
            "modelling.serving",
            "estimates.estimate",
            "workloads.binning",
        ),
    output:
        f"results/validation/{CELL_PATH}.parquet",
    log:
        f"logs/validation/{CELL_PATH}.log",
    benchmark:
        f"results/benchmarks/validate_cell/{CELL_PATH}.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        input_edges=config["bins"]["input"],
        output_edges=config["bins"]["output"],
    script:
        "../../scripts/rules/validate_cell.py"


# Online serving under load (online.rates): an online cell's server is sent the replay sample of the
# trace online.trace at each Poisson rate; latency per request, energy of a steady-state window.
rule serve_cell:
    input:
        model=model_dir,
        profile=f"results/profile/{config['online']['trace']}.parquet",
        # its prefill/decode split weighs a prompt token against an output token in the attribution
        measurements=ancient(f"results/checked/{CELL_PATH}.parquet"),
        # a cell measured again sweeps its rates again (not read; as for replay_cell)
        cell=f"results/measurements/{CELL_PATH}.parquet",
    output:
        table=f"results/serving/{CELL_PATH}.parquet",
        requests=f"results/requests/{CELL_PATH}.parquet",
    log:
        f"logs/serving/{CELL_PATH}.log",
    benchmark:
        f"results/benchmarks/serve_cell/{CELL_PATH}.tsv"
    wildcard_constraints:
        hardware=re.escape(HARDWARE),
    conda:
        measure_env
    threads: workflow.cores
    resources:
        gpu=cell_gpus,
    params:
        # the protocol, the online section, the replay's sample (size, seed: the one the sweep sends) and
        # the bins' top edges; which workloads the replay serves is not read
        job=serve_params,
    script:
        "../../scripts/rules/serve_cell.py"
