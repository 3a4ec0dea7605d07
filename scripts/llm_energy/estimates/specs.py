"""Hardware specifications for the ideal (FLOPs x TDP / peak FLOPS) energy, each with its datasheet."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SPECS_CSV = Path(__file__).parent / "data" / "hardware_specs.csv"


def load_specs(extra: dict | None = None) -> pd.DataFrame:
    """The shipped table, plus (or overridden by) ``extra``: {slug: {tdp_w, bf16_dense_tflops, ...}}."""
    specs = pd.read_csv(SPECS_CSV).set_index("slug")
    for slug, spec in (extra or {}).items():
        row = {"name": slug, "bf16_sparse_tflops": float("nan"), "memory_bandwidth_gbs": float("nan"),
               "source": "config.yaml hardware_specs", **spec}
        specs.loc[slug] = pd.Series(row)
    return specs


def spec_for(slug: str, specs: pd.DataFrame) -> dict | None:
    """The spec of a hardware slug, or None when unknown."""
    return specs.loc[slug].to_dict() if slug in specs.index else None


# bf16 FLOPs per cycle per core of the widest matrix/vector unit a CPU flag announces (an FMA counts
# two FLOPs). AMX: 1,024 (Intel's figure for Sapphire Rapids); AVX-512 BF16: 32 bf16 pairs per 512-bit
# dot product, x2 ports on Intel, one double-pumped port on AMD Zen 4; without bf16 the fp32 FMA rate.
_FLOPS_PER_CYCLE = (  # (flag, vendor or None for any, FLOPs/cycle, what it assumes)
    ("amx_bf16", None, 1024, "AMX BF16 tiles, 1,024 FLOPs/cycle"),
    ("avx512_bf16", "GenuineIntel", 128, "AVX-512 BF16 on 2 ports, 2 x 64 FLOPs/cycle"),
    ("avx512_bf16", None, 64, "AVX-512 BF16 on 1 (double-pumped) port, 64 FLOPs/cycle"),
    ("avx512f", None, 64, "AVX-512 fp32 FMA on 2 ports, 64 FLOPs/cycle"),
    ("avx2", None, 32, "AVX2 fp32 FMA on 2 ports, 32 FLOPs/cycle"),
)


def parse_cpuinfo(text: str) -> dict:
    """Model name, vendor, flags, MHz and logical CPU count from /proc/cpuinfo's text."""
    info: dict = {"processors": 0, "flags": set(), "mhz": None, "model": "unknown CPU", "vendor": ""}
    for line in text.splitlines():
        key, _, value = (s.strip() for s in line.partition(":"))
        if key == "processor":
            info["processors"] += 1
        elif key == "model name":
            info["model"] = value
        elif key == "vendor_id":
            info["vendor"] = value
        elif key == "flags":
            info["flags"] = set(value.split())
        elif key == "cpu MHz" and info["mhz"] is None:
            try:
                info["mhz"] = float(value)
            except ValueError:
                pass
    return info


def cpu_spec(watts_per_core: float, cpuinfo: str | None = None, cores: int | None = None) -> dict | None:
    """This machine's CPU spec for the ideal, derived and said as an assumption: TDP = cores x the CPU
    meter's watts per core (so the ideal and the CPU estimate share their power), peak = cores x clock x
    the bf16 FLOPs per cycle of the widest unit its flags announce. None where /proc/cpuinfo says too
    little (no clock, no known vector unit)."""
    import os

    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    info = parse_cpuinfo(cpuinfo)
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else info["processors"]
    unit = next(((f, n, why) for f, vendor, n, why in _FLOPS_PER_CYCLE
                 if f in info["flags"] and vendor in (None, info["vendor"])), None)
    if not info["mhz"] or not unit or not cores:
        return None
    ghz = info["mhz"] / 1000.0
    tflops = cores * ghz * unit[1] / 1000.0
    return {"name": f"{info['model']} ({cores} CPUs)", "tdp_w": cores * float(watts_per_core),
            "bf16_dense_tflops": round(tflops, 4), "bf16_sparse_tflops": float("nan"),
            "memory_bandwidth_gbs": float("nan"),
            "source": (f"assumption, derived from /proc/cpuinfo: {cores} CPUs x {watts_per_core:g} W (the CPU "
                       f"meter's W/core); {unit[2]} x {ghz:.2f} GHz x {cores} CPUs")}


def specs_for_run(extra: dict | None, hardware: str, watts_per_core: float) -> pd.DataFrame:
    """The specs of a run: shipped, config's ``hardware_specs``, and for this machine's CPU (``cpu-*``)
    without one, the derived :func:`cpu_spec`."""
    specs = load_specs(extra)
    if hardware.startswith("cpu-") and hardware not in specs.index:
        spec = cpu_spec(watts_per_core)
        if spec:
            specs.loc[hardware] = pd.Series(spec)
    return specs
