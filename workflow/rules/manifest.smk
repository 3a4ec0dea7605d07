# Provenance: one manifest per run beside the results (package versions, git commit, hardware,
# config hash, and each measurement file's checksum and recorded versions).


localrules:
    manifest,


rule manifest:
    input:
        estimates="results/estimates/estimates.parquet",
        # the raw measurement file behind each checked one (merged hardware included)
        measurements=all_measurement_files(),
        code=package_code("pipeline.manifest"),
    output:
        "results/manifest.json",
    log:
        "logs/manifest.log",
    benchmark:
        "results/benchmarks/manifest.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        config=config,
        hardware=HARDWARE,
    script:
        "../../scripts/rules/manifest.py"
