# Figures and tables of the paper, from whatever cells exist, and the paper itself.
# One job per figure and per table; scripts/llm_energy/paper/registry.py names each, with the function that
# writes it, the inputs it reads (paper_inputs) and its report caption. A figure is a PDF (for the
# paper), a PNG (for the report), its plotted data (CSV) and its caption (.tex); a table is LaTeX and CSV.


localrules:
    figure,
    table,
    findings,
    summary,
    paper_pdf,


rule figure:
    input:
        unpack(paper_inputs),
    output:
        pdf="paper/figures/{figure}.pdf",
        png=report(
            "paper/figures/{figure}.png",
            caption="../report/output.rst",
            category="Figures",
            labels={"figure": "{figure}"},
        ),
        csv="paper/figures/{figure}.csv",
        tex="paper/figures/{figure}.tex",
    log:
        "logs/paper/{figure}.log",
    benchmark:
        "results/benchmarks/figure/{figure}.tsv"
    wildcard_constraints:
        figure=_alternatives(FIGURES),
    conda:
        "../../envs/analysis.yaml"
    params:
        settings=paper_settings,
        caption=paper_caption,
    script:
        "../../scripts/rules/figure.py"


rule table:
    input:
        unpack(paper_inputs),
    output:
        tex="paper/tables/{table}.tex",
        csv=report(
            "paper/tables/{table}.csv",
            caption="../report/output.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
    log:
        "logs/paper/{table}.log",
    benchmark:
        "results/benchmarks/table/{table}.tsv"
    wildcard_constraints:
        table=_alternatives(TABLES),
    conda:
        "../../envs/analysis.yaml"
    params:
        settings=paper_settings,
        caption=paper_caption,
    script:
        "../../scripts/rules/table.py"


# Every finding of the paper with a verdict computed from this run (criteria: llm_energy/paper/criteria.py).
rule findings:
    input:
        measurements=checked_files(),
        estimates="results/estimates/estimates.parquet",
        savings="results/estimates/savings.parquet",
        # the meter's drift between jobs (the replays' control points): the verdicts' noise gate
        validation=validation_files(),
        code=package_code(
            "paper.findings",
            "paper.criteria",
            "paper.savings",
            "paper.testability",
            "paper.figures",
        ),
    output:
        md="paper/findings.md",
        csv=report(
            "paper/findings.csv",
            caption="../report/findings.rst",
            category="Findings",
        ),
        tex="paper/findings.tex",
    log:
        "logs/paper/findings.log",
    benchmark:
        "results/benchmarks/findings.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        fixed_input=config["measurement"]["sweep_fixed_input"],
        fixed_output=config["measurement"]["sweep_fixed_output"],
    script:
        "../../scripts/rules/findings.py"


# The page a person reads first (llm_energy/paper/summary.py): per workload and stack the energy per request
# and per 1,000 output tokens, the requests left out, each method's worst replay error, the verdict
# counts and every flag in words; the Snakefile's onsuccess prints its first lines.
rule summary:
    input:
        estimates="results/estimates/estimates.parquet",
        left_out="results/estimates/left_out.csv",
        bins=expand("results/bins/{workload}.summary.json", workload=WORKLOADS),
        # the real output tokens of the requests the estimates price (Wh per 1,000 output tokens)
        profiles=expand("results/profile/{workload}.parquet", workload=WORKLOADS),
        validation=validation_files(),
        findings="paper/findings.csv",
        code=package_code("paper.summary", "paper.tables", "workloads.binning"),
    output:
        md="paper/summary.md",
        csv=report(
            "paper/tables/leaderboard.csv",
            caption="../report/summary.rst",
            category="Tables",
        ),
    log:
        "logs/paper/summary.log",
    benchmark:
        "results/benchmarks/summary.tsv"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/rules/summary.py"


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
        findings="paper/findings.tex",
    output:
        status="paper/main.pdf.txt",
    log:
        "logs/paper/paper_pdf.log",
    benchmark:
        "results/benchmarks/paper_pdf.tsv"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/rules/paper_pdf.py"
