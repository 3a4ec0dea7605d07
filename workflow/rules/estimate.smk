# Whole-workload energy: sum over bins of (requests / batch) x measured batch energy (method binned),
# and every request served at its true length by the cell's energy model (method model); the FLOPs
# ideal, and the savings of optimized over baseline stacks.


localrules:
    estimate,


rule estimate:
    input:
        bins=expand("results/bins/{workload}.parquet", workload=WORKLOADS),
        summaries=expand("results/bins/{workload}.summary.json", workload=WORKLOADS),
        # the energy model (method = model) serves every request at its true length
        profiles=expand("results/profile/{workload}.parquet", workload=WORKLOADS),
        measurements=grid_checked_files(),
        model_dirs=measured_model_dirs(),
        # each method's largest error against the metered replays (none when replay is off)
        validation=validation_files(),
        # hourly carbon intensity (config carbon.intensity_file), when one is given
        intensity=config["carbon"]["intensity_file"] or [],
        code=package_code(
            "estimates.estimate",
            "models.flops",
            "estimates.specs",
            "modelling.energy_model",
            "modelling.serving",
            "estimates.replay",
            "estimates.carbon",
        ),
    output:
        estimates="results/estimates/estimates.parquet",
        by_bin="results/estimates/by_bin.parquet",
        savings="results/estimates/savings.parquet",
        left_out="results/estimates/left_out.csv",
    log:
        "logs/estimate/estimate.log",
    benchmark:
        "results/benchmarks/estimate.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        workloads=WORKLOADS,
        models=grid_models(),
        hardware_specs=config["hardware_specs"],
        # this machine's CPU without a spec gets one derived from /proc/cpuinfo (an assumption, said)
        hardware=HARDWARE,
        cpu_watts_per_core=config["measurement"]["cpu_watts_per_core"],
        comparisons=config["comparisons"],
        # kWh x PUE, kgCO2e and cost of each estimate (llm_energy.estimates.carbon)
        carbon=config["carbon"],
    script:
        "../../scripts/rules/estimate.py"
