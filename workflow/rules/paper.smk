# Figures and tables of the paper, from whatever cells exist.


localrules:
    figures,
    figure_replay,
    figure_binning,
    tables,


rule figures:
    input:
        estimates="results/estimates/estimates.parquet",
        measurements=checked_files(),
    output:
        fig1=report(
            "paper/figures/fig1_workload_energy.pdf",
            caption="../report/fig1.rst",
            category="Figures",
        ),
        fig2=report(
            "paper/figures/fig2_prefill_decode.pdf",
            caption="../report/fig2.rst",
            category="Figures",
        ),
    log:
        "logs/paper/figures.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        fixed_input=config["measurement"]["sweep_fixed_input"],
        fixed_output=config["measurement"]["sweep_fixed_output"],
    script:
        "../../scripts/rules/figures.py"


rule figure_replay:
    input:
        validation_files(),
    output:
        report(
            "paper/figures/fig_replay_validation.pdf",
            caption="../report/fig_replay.rst",
            category="Figures",
        ),
    log:
        "logs/paper/figure_replay.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/rules/figure_replay.py"


rule figure_binning:
    input:
        expand("results/profile/{workload}.parquet", workload=WORKLOADS),
    output:
        report(
            "paper/figures/fig7_binning_cdfs.pdf",
            caption="../report/fig7.rst",
            category="Figures",
        ),
    log:
        "logs/paper/figure_binning.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        workloads=WORKLOADS,
        input_edges=config["bins"]["input"],
        output_edges=config["bins"]["output"],
    script:
        "../../scripts/rules/figure_binning.py"


rule tables:
    input:
        stats=expand("results/profile/{workload}.stats.json", workload=WORKLOADS),
        bins=expand("results/bins/{workload}.summary.json", workload=WORKLOADS),
        estimates="results/estimates/estimates.parquet",
        savings="results/estimates/savings.parquet",
    output:
        traces="paper/tables/table1_workloads.tex",
        tasks="paper/tables/table2_tasks.tex",
        bins="paper/tables/table3_bins.tex",
        estimates="paper/tables/table4_estimates.tex",
    log:
        "logs/paper/tables.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        workloads=WORKLOADS,
        kinds=[config["workloads"][w]["kind"] for w in WORKLOADS],
    script:
        "../../scripts/rules/tables.py"
