"""Paper figures: one style, plotted data written beside every figure, estimated energy drawn hollow.

Each figure is written as PDF and PNG, its plotted data as CSV, and a LaTeX fragment
(``<name>.tex``) whose caption names the hardware, models and energy source, for ``paper/main.tex``;
a figure function takes the four paths as one :class:`FigureFiles`. Which function draws which
figure from which inputs: ``llm_energy.paper.registry``.
A figure with nothing to plot (cells not in the config) is still written: it says so in the
plot, in a ``note`` column of its CSV and in its caption.
"""

from llm_energy.paper.figures.batch import fig_compile_graphs, fig_decoding, fig_moe, fig_tensor_parallel
from llm_energy.paper.figures.online import fig_online
from llm_energy.paper.figures.requests import fig_request_energy
from llm_energy.paper.figures.style import (
                        ESTIMATED,
                        PALETTE,
                        SINGLE_COLUMN_IN,
                        FigureFiles,
                        save,
                        setup_style,
                        tex_escape,
)
from llm_energy.paper.figures.sweeps import fig_prefill_decode, prefill_decode_table
from llm_energy.paper.figures.workloads import (
                        fig_binning_cdfs,
                        fig_distortion,
                        fig_replay_validation,
                        fig_tasks,
                        fig_workload_energy,
                        stack_label,
)

__all__ = ["ESTIMATED", "PALETTE", "SINGLE_COLUMN_IN", "FigureFiles", "fig_binning_cdfs",
           "fig_compile_graphs",
           "fig_decoding", "fig_distortion", "fig_moe", "fig_online", "fig_prefill_decode", "fig_replay_validation",
           "fig_request_energy", "fig_tasks", "fig_tensor_parallel", "fig_workload_energy", "prefill_decode_table",
           "save", "setup_style", "stack_label", "tex_escape"]
