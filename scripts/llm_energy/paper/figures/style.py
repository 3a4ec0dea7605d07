"""One style for every figure, and how a figure is written: PDF, PNG, plotted data (CSV), caption (.tex).

Estimated energy (``cpu-estimate``) is never drawn like measured energy: hollow markers and
hatched bars, and the caption names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from llm_energy.paper.tex import tex_escape
from llm_energy.pipeline.io import atomic_path, write_text  # noqa: E402

PALETTE = "colorblind"
ESTIMATED = "cpu-estimate"
SINGLE_COLUMN_IN = 3.4
PANEL_W_IN = 2.3
PANEL_H_IN = 1.8


def setup_style() -> None:
    """Seaborn paper context, colour-blind-safe palette, sizes readable at one column's width."""
    sns.set_theme(context="paper", style="whitegrid", palette=PALETTE, font_scale=0.9)
    plt.rcParams.update({"figure.dpi": 150, "savefig.bbox": "tight", "pdf.fonttype": 42,
                         "legend.frameon": False})


def colours(n: int) -> list:
    """``n`` colours of the colour-blind palette (it repeats after ten)."""
    pal = sns.color_palette(PALETTE)
    return [pal[i % len(pal)] for i in range(n)]



def source_note(sources) -> str:
    """Caption sentence naming the energy source(s); estimated energy is said to be an estimate."""
    sources = sorted({str(s) for s in sources if isinstance(s, str) and s})
    if not sources:
        return ""
    measured = [s for s in sources if s != ESTIMATED]
    parts = []
    if ESTIMATED in sources:
        parts.append("Energy marked \\texttt{cpu-estimate} is CPU time $\\times$ a per-core power, an estimate, not "
                     "a measurement; it is drawn with hollow markers and hatched bars.")
    if measured:
        parts.append("Energy measured with " + ", ".join(f"\\texttt{{{tex_escape(s)}}}" for s in measured) + ".")
    return " ".join(parts)


def cells_note(df: pd.DataFrame) -> str:
    """Caption sentence naming the hardware and models the figure's data comes from."""
    if df.empty or "hardware" not in df or "model" not in df:
        return ""
    hw = ", ".join(sorted({str(h) for h in df["hardware"].dropna().unique()}))
    models = ", ".join(sorted({str(m) for m in df["model"].dropna().unique()}))
    return f"Hardware: \\texttt{{{tex_escape(hw)}}}; model: \\texttt{{{tex_escape(models)}}}."


def figure_tex(name: str, caption: str, width_in: float | None = None) -> str:
    """The LaTeX fragment ``paper/main.tex`` inputs for a figure: at its own size (so that every figure's
    text has the same size on the page), scaled down only to fit the column and 80 % of the page height."""
    width = f"{min(width_in, 6.5):.2f}in" if width_in else "\\columnwidth"
    return ("\\begin{figure}[htbp]\n  \\centering\n"
            f"  \\includegraphics[width={width},height=0.8\\textheight,keepaspectratio]{{figures/{name}.pdf}}\n"
            f"  \\caption{{{caption}}}\n  \\label{{fig:{name}}}\n\\end{{figure}}\n")


@dataclass(frozen=True)
class FigureFiles:
    """Where one figure is written: the PDF (for the paper), the PNG (for the report), the plotted
    data (CSV) and the LaTeX fragment with its caption. The rule passes the paths Snakemake gives it."""

    pdf: Path
    png: Path
    csv: Path
    tex: Path

    def __post_init__(self) -> None:
        for ext in ("pdf", "png", "csv", "tex"):
            object.__setattr__(self, ext, Path(getattr(self, ext)))

    @classmethod
    def in_folder(cls, folder: str | Path, name: str) -> FigureFiles:
        """``folder/name.{pdf,png,csv,tex}``, the layout of ``paper/figures/``."""
        return cls(*(Path(folder) / f"{name}.{ext}" for ext in ("pdf", "png", "csv", "tex")))

    @property
    def name(self) -> str:
        """The figure's name: its PDF's stem, which ``paper/main.tex`` includes and labels it by."""
        return self.pdf.stem


# How a footer names each meter's energy (anything else is named as it is).
METER_WORDS = {ESTIMATED: "cpu-estimate (CPU-time estimate, not a power meter)", "rapl": "rapl (RAPL counter)"}
NOT_A_METER = {"flops-ideal"}  # a computed reference drawn beside the measurements


def stamp(data: pd.DataFrame) -> str:
    """The footer of a figure read on its own (a PNG in the report, a PDF sent on): the hardware its data
    came from and the meters' energy sources, from the plotted data's own columns; "" when it has none."""
    def values(col: str) -> list[str]:
        return sorted({str(v) for v in data[col].dropna().unique() if str(v)}) if col in data else []

    hardware = values("hardware")
    sources = [METER_WORDS.get(s, s) for s in values("energy_source") if s not in NOT_A_METER]
    parts = ([f"hardware: {', '.join(hardware)}"] if hardware else []) + (
        [f"energy: {', '.join(sources)}"] if sources else [])
    return "; ".join(parts)


def save(fig, data: pd.DataFrame, files: FigureFiles, caption: str) -> list[Path]:
    """Write the figure, its plotted data and its caption fragment to ``files`` (each complete or absent).

    Each image carries :func:`stamp` as a small footer and in its metadata (PDF Subject, PNG Description)."""
    footer = stamp(data)
    if footer:  # below everything drawn (axis labels, legends under the axes), left-aligned with it
        box = fig.get_tightbbox(fig.canvas.get_renderer())
        w, h = fig.get_size_inches()
        fig.text(box.x0 / w, (box.y0 - 0.03) / h, footer, fontsize=5, color="0.4", ha="left", va="top")
    width_in = fig.get_tightbbox(fig.canvas.get_renderer()).width + 2 * plt.rcParams["savefig.pad_inches"]
    meta = {"pdf": {"Title": files.name, "Subject": footer}, "png": {"Title": files.name, "Description": footer}}
    for ext in ("pdf", "png"):
        with atomic_path(getattr(files, ext)) as tmp:
            fig.savefig(tmp, format=ext, metadata=meta[ext])
    plt.close(fig)
    with atomic_path(files.csv) as tmp:
        data.to_csv(tmp, index=False)
    write_text(figure_tex(files.name, caption, width_in), files.tex)
    return [files.pdf, files.png, files.csv, files.tex]


def no_data_figure(message: str):
    """A one-panel figure that says, in the plot itself, that there is nothing to draw and why."""
    fig, ax = plt.subplots(figsize=(SINGLE_COLUMN_IN, 1.4))
    no_data_panel(ax, message)
    return fig


def no_data_panel(ax, message: str) -> None:
    """Empty a panel and write ``message`` in it."""
    import textwrap

    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    width_in = ax.get_position().width * ax.figure.get_figwidth()
    lines = textwrap.fill(message, width=max(20, int(width_in * 13)))
    ax.text(0.5, 0.5, lines, ha="center", va="center", fontsize="small", transform=ax.transAxes)


def errorbar(ax, x, y, yerr, colour, estimated: bool, label: str | None = None, marker: str = "o",
             linestyle: str = "-"):
    """Mean with its spread over repeats; hollow markers for estimated energy. Returns the container
    (a legend handle)."""
    return ax.errorbar(x, y, yerr=yerr, color=colour, marker=marker, markersize=4, linestyle=linestyle,
                linewidth=1.2, capsize=2, markerfacecolor="white" if estimated else colour,
                markeredgewidth=1.0, label=label)


def estimated_handle() -> Line2D:
    """Legend entry that explains hollow markers."""
    return Line2D([], [], color="grey", marker="o", markerfacecolor="white", linestyle="",
                  label="hollow: cpu-estimate")


def hatch_estimated(bars, estimated: bool) -> None:
    """Hatch the bars of estimated energy."""
    if estimated:
        for bar in bars:
            bar.set_hatch("///")
            bar.set_edgecolor("black")


def plain_number(v: float) -> str:
    """1024 -> "1024", 0.25 -> "0.25", 2.5e-05 -> "2.5e-05"."""
    if 1 <= abs(v) < 1e6 and float(v).is_integer():
        return str(int(v))
    return f"{v:.3g}"


def plain_log_labels(ax, axis: str = "y") -> None:
    """Tick labels of a log axis as plain numbers (0.3, 20, 1024) instead of 3 x 10^-1. An axis that
    spans less than a decade gets a few labelled ticks at 1, 2, 3, 5 x 10^k (denser if needed)."""
    import math

    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    a = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    a.set_major_formatter(FuncFormatter(lambda v, _: plain_number(v)))
    a.set_minor_formatter(NullFormatter())
    if lo <= 0 or hi / lo >= 10:
        return
    exps = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
    for subs in ((1, 2, 5), (1, 2, 3, 5), (1, 1.5, 2, 3, 4, 5, 7), tuple(range(1, 10))):
        ticks = [m * 10.0 ** e for e in exps for m in subs if lo <= m * 10.0 ** e <= hi]
        if len(ticks) >= 3 or subs[-1] == 9:
            break
    a.set_major_locator(FixedLocator(ticks))


def shared_legend(fig, handles, ncol: int | None = None) -> None:
    """One legend for all panels, below them, so that it never covers data."""
    if not handles:
        return
    labels = [h.get_label() for h in handles]
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize="small",
               ncol=ncol or min(len(handles), 3), frameon=False)
