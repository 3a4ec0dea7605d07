# Workloads: per-request token counts and statistics, then power-of-two bins.


localrules:
    profile_workload,
    bin_workload,


rule profile_workload:
    input:
        unpack(profile_inputs),
    output:
        table="results/profile/{workload}.parquet",
        stats="results/profile/{workload}.stats.json",
    log:
        "logs/profile/{workload}.log",
    benchmark:
        "results/benchmarks/profile_workload/{workload}.tsv"
    priority: CHEAP_FIRST
    conda:
        "../../envs/analysis.yaml"
    params:
        spec=workload_spec,
        raw_path=raw_path,
    script:
        "../../scripts/rules/profile_workload.py"


rule bin_workload:
    input:
        profile="results/profile/{workload}.parquet",
        code=package_code("workloads.binning"),
    output:
        table="results/bins/{workload}.parquet",
        summary="results/bins/{workload}.summary.json",
        distortion="results/bins/{workload}.distortion.png",
    log:
        "logs/bins/{workload}.log",
    benchmark:
        "results/benchmarks/bin_workload/{workload}.tsv"
    priority: CHEAP_FIRST
    conda:
        "../../envs/analysis.yaml"
    params:
        input_edges=config["bins"]["input"],
        output_edges=config["bins"]["output"],
    script:
        "../../scripts/rules/bin_workload.py"
