# Whole-workload energy: sum over bins of (requests / batch) x measured batch energy.


localrules:
    estimate,


rule estimate:
    input:
        bins=expand("results/bins/{workload}.parquet", workload=WORKLOADS),
        summaries=expand("results/bins/{workload}.summary.json", workload=WORKLOADS),
        measurements=measurement_files(),
    output:
        estimates="results/estimates/estimates.parquet",
        by_bin="results/estimates/by_bin.parquet",
    log:
        "logs/estimate/estimate.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        workloads=WORKLOADS,
        batch_size=config["measurement"]["batch_size"],
    script:
        "../../scripts/rules/estimate.py"
