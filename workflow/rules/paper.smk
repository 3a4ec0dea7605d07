# Figures and tables of the paper, from whatever cells exist, and the paper itself.
# Each figure is a PDF (for the paper), a PNG (for the report), its plotted data (CSV) and its caption (.tex).


localrules:
    figures,
    figure_replay,
    figure_binning,
    tables,
    paper_pdf,


rule figures:
    input:
        estimates="results/estimates/estimates.parquet",
        by_bin="results/estimates/by_bin.parquet",
        measurements=checked_files(),
    output:
        fig1="paper/figures/fig1_workload_energy.pdf",
        fig1_png=report(
            "paper/figures/fig1_workload_energy.png",
            caption="../report/fig1.rst",
            category="Figures",
        ),
        fig1_csv="paper/figures/fig1_workload_energy.csv",
        fig1_tex="paper/figures/fig1_workload_energy.tex",
        fig2="paper/figures/fig2_prefill_decode.pdf",
        fig2_png=report(
            "paper/figures/fig2_prefill_decode.png",
            caption="../report/fig2.rst",
            category="Figures",
        ),
        fig2_csv="paper/figures/fig2_prefill_decode.csv",
        fig2_tex="paper/figures/fig2_prefill_decode.tex",
        fig3="paper/figures/fig3_decoding.pdf",
        fig3_png=report(
            "paper/figures/fig3_decoding.png",
            caption="../report/fig3.rst",
            category="Figures",
        ),
        fig3_csv="paper/figures/fig3_decoding.csv",
        fig3_tex="paper/figures/fig3_decoding.tex",
        fig4="paper/figures/fig4_moe.pdf",
        fig4_png=report(
            "paper/figures/fig4_moe.png",
            caption="../report/fig4.rst",
            category="Figures",
        ),
        fig4_csv="paper/figures/fig4_moe.csv",
        fig4_tex="paper/figures/fig4_moe.tex",
        fig5="paper/figures/fig5_compile_cudagraphs.pdf",
        fig5_png=report(
            "paper/figures/fig5_compile_cudagraphs.png",
            caption="../report/fig5.rst",
            category="Figures",
        ),
        fig5_csv="paper/figures/fig5_compile_cudagraphs.csv",
        fig5_tex="paper/figures/fig5_compile_cudagraphs.tex",
        fig6="paper/figures/fig6_tensor_parallel.pdf",
        fig6_png=report(
            "paper/figures/fig6_tensor_parallel.png",
            caption="../report/fig6.rst",
            category="Figures",
        ),
        fig6_csv="paper/figures/fig6_tensor_parallel.csv",
        fig6_tex="paper/figures/fig6_tensor_parallel.tex",
        fig8="paper/figures/fig8_tasks.pdf",
        fig8_png=report(
            "paper/figures/fig8_tasks.png",
            caption="../report/fig8.rst",
            category="Figures",
        ),
        fig8_csv="paper/figures/fig8_tasks.csv",
        fig8_tex="paper/figures/fig8_tasks.tex",
        fig9="paper/figures/fig9_online_offline.pdf",
        fig9_png=report(
            "paper/figures/fig9_online_offline.png",
            caption="../report/fig9.rst",
            category="Figures",
        ),
        fig9_csv="paper/figures/fig9_online_offline.csv",
        fig9_tex="paper/figures/fig9_online_offline.tex",
        fig10="paper/figures/fig10_prefill_decode_transformers.pdf",
        fig10_png=report(
            "paper/figures/fig10_prefill_decode_transformers.png",
            caption="../report/fig10.rst",
            category="Figures",
        ),
        fig10_csv="paper/figures/fig10_prefill_decode_transformers.csv",
        fig10_tex="paper/figures/fig10_prefill_decode_transformers.tex",
    log:
        "logs/paper/figures.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        fixed_input=config["measurement"]["sweep_fixed_input"],
        fixed_output=config["measurement"]["sweep_fixed_output"],
        task_workloads=[
            w for w in WORKLOADS if config["workloads"][w]["kind"] == "task"
        ],
    script:
        "../../scripts/rules/figures.py"


rule figure_replay:
    input:
        validation_files(),
    output:
        pdf="paper/figures/fig_replay_validation.pdf",
        png=report(
            "paper/figures/fig_replay_validation.png",
            caption="../report/fig_replay.rst",
            category="Figures",
        ),
        csv="paper/figures/fig_replay_validation.csv",
        tex="paper/figures/fig_replay_validation.tex",
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
        pdf="paper/figures/fig7_binning_cdfs.pdf",
        png=report(
            "paper/figures/fig7_binning_cdfs.png",
            caption="../report/fig7.rst",
            category="Figures",
        ),
        csv="paper/figures/fig7_binning_cdfs.csv",
        tex="paper/figures/fig7_binning_cdfs.tex",
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


# paper/main.pdf when latexmk is installed; the status file says what happened (or how to get the
# PDF), so that a machine without TeX neither fails the run nor reruns this rule every time.
rule paper_pdf:
    input:
        # The repository's main.tex, also when the run's folder is elsewhere (--directory); relative,
        # so that moving the checkout re-plans nothing.
        main=os.path.relpath(f"{workflow.basedir}/paper/main.tex"),
        figures=expand(
            "paper/figures/{figure}.{ext}", figure=FIGURES, ext=["pdf", "tex"]
        ),
        tables=expand("paper/tables/{table}.tex", table=TABLES),
    output:
        status="paper/main.pdf.txt",
    log:
        "logs/paper/paper_pdf.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/rules/paper_pdf.py"
