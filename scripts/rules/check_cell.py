"""Rule check_cell: check that a measurement file is one, then mark every row valid or invalid (with the reason)."""

import logging

from llm_energy.measurement.validation import (
    CELL_KEYS,
    check_measurements,
    enforce,
    gate_options,
    read_measurements,
    summary,
    unusable,
)
from llm_energy.pipeline.hardware import detect
from llm_energy.pipeline.io import write_json, write_parquet
from llm_energy.pipeline.rulekit import run_rule


def main(sm):
    v = sm.params.validation
    log = logging.getLogger("llm_energy")
    table = read_measurements(sm.input[0], cell={k: sm.wildcards.get(k) for k in CELL_KEYS}, here=detect())
    checked = check_measurements(table, min_window_s=v["min_window_s"], max_cv=v["max_cv"],
                                 min_power_coverage=v["min_power_coverage"],
                                 sample_interval_s=v["sample_interval_s"], **gate_options(v))
    enforce(checked, sm.input[0], v["fail_on_invalid"])
    s = summary(checked)
    log.info("%s: %d of %d rows invalid %s", sm.input[0], s["n_invalid_rows"], s["n_rows"], s["reasons"] or "")
    why = unusable(checked)
    if why:
        log.warning("%s: %s; none of its rows is used (the estimates leave this cell out)", sm.input[0], why)
    write_parquet(checked, sm.output.table)
    write_json(s, sm.output.summary)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
