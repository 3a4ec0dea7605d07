# Measurement checks: each row marked valid or invalid (with the reason) before any aggregation.


localrules:
    check_cell,


rule check_cell:
    input:
        table="results/measurements/{hardware}/{model}/{variant}/{decoding}.parquet",
        code=package_code("validation"),
    output:
        table="results/checked/{hardware}/{model}/{variant}/{decoding}.parquet",
        summary="results/checked/{hardware}/{model}/{variant}/{decoding}.json",
    log:
        "logs/checked/{hardware}/{model}/{variant}/{decoding}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        validation=VALIDATION,
    script:
        "../../scripts/rules/check_cell.py"


# Replay validation: serve a seeded sample of each workload for real and compare with the binned
# estimate of the same sample, per cell. Measured on this machine, like the cells themselves.


rule replay_cell:
    input:
        unpack(draft_input),
        model=model_dir,
        profiles=expand("results/profile/{workload}.parquet", workload=WORKLOADS),
        # ancient: a re-check after an edit of the validation code never re-runs the metered replay
        measurements=ancient(
            "results/checked/{hardware}/{model}/{variant}/{decoding}.parquet"
        ),
    output:
        "results/validation/{hardware}/{model}/{variant}/{decoding}.parquet",
    log:
        "logs/validation/{hardware}/{model}/{variant}/{decoding}.log",
    wildcard_constraints:
        hardware=re.escape(HARDWARE),
    conda:
        measure_env
    threads: workflow.cores
    resources:
        gpu=cell_gpus,
    params:
        workloads=WORKLOADS,
        replay=config["replay"],
    script:
        "../../scripts/rules/replay_cell.py"
