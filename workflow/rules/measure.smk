# Measurement: one job per (hardware, model, variant, decoding) cell; the model loads once.
# A cell takes every core it is given, so two cells never share the machine while one is metered.


# Only this machine's hardware: a measurement file of another hardware (copied in to merge) is then a
# source file with no rule, so no --force, --forcerun or -F can delete it.
rule measure_cell:
    input:
        unpack(measure_inputs),
    output:
        table=f"results/measurements/{CELL_PATH}.parquet",
        power=f"results/measurements/{CELL_PATH}.power.parquet",
    log:
        f"logs/measure/{CELL_PATH}.log",
    benchmark:
        f"results/benchmarks/measure_cell/{CELL_PATH}.tsv"
    wildcard_constraints:
        hardware=re.escape(HARDWARE),
    conda:
        measure_env
    threads: workflow.cores
    resources:
        gpu=cell_gpus,
    params:
        points=cell_points,
        measurement=config["measurement"],
        decoding=cell_decoding,
        online=cell_online,
        prompts=cell_prompts,
    script:
        "../../scripts/rules/measure_cell.py"
