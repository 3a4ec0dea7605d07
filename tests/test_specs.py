"""The ideal's hardware spec on any machine: a CPU without a datasheet row gets one derived from
/proc/cpuinfo (said as an assumption), so no estimate prints NaN for this machine's ideal."""

import math

import pytest

from llm_energy.estimates.specs import cpu_spec, load_specs, specs_for_run

ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9B14
cpu MHz\t\t: 2600.000
flags\t\t: fpu avx2 avx512f avx512_bf16
processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9B14
cpu MHz\t\t: 2600.000
flags\t\t: fpu avx2 avx512f avx512_bf16
"""


def test_cpu_spec_from_cpuinfo_shares_the_cpu_meters_power():
    spec = cpu_spec(4.0, ZEN4, cores=2)
    assert spec["tdp_w"] == 8.0
    # 2 CPUs x 2.6 GHz x 64 bf16 FLOPs/cycle (one double-pumped AVX-512 port on AMD)
    assert spec["bf16_dense_tflops"] == pytest.approx(2 * 2.6 * 64 / 1000)
    assert spec["source"].startswith("assumption")
    assert "AMD EPYC 9B14" in spec["name"]


@pytest.mark.parametrize("vendor, flags, per_cycle", [
    ("GenuineIntel", "avx2 avx512f avx512_bf16 amx_bf16", 1024),
    ("GenuineIntel", "avx2 avx512f avx512_bf16", 128),
    ("GenuineIntel", "avx2 avx512f", 64),
    ("GenuineIntel", "avx2", 32),
])
def test_cpu_spec_takes_the_widest_unit_the_flags_announce(vendor, flags, per_cycle):
    text = f"processor: 0\nvendor_id: {vendor}\nmodel name: X\ncpu MHz: 1000.0\nflags: {flags}\n"
    assert cpu_spec(1.0, text, cores=1)["bf16_dense_tflops"] == pytest.approx(per_cycle / 1000)


def test_cpu_spec_is_none_when_cpuinfo_says_too_little():
    assert cpu_spec(4.0, "processor: 0\nmodel name: X\nflags: sse2\ncpu MHz: 1000\n", cores=1) is None
    assert cpu_spec(4.0, "processor: 0\nmodel name: X\nflags: avx2\n", cores=1) is None


def test_specs_for_run_adds_this_cpu_and_keeps_config_overrides():
    specs = specs_for_run({}, "cpu-some-new-chip", 4.0)
    if "cpu-some-new-chip" in specs.index:  # /proc/cpuinfo readable with a clock and a known unit
        row = specs.loc["cpu-some-new-chip"]
        assert row["tdp_w"] > 0 and row["bf16_dense_tflops"] > 0 and not math.isnan(row["tdp_w"])
    given = specs_for_run({"cpu-some-new-chip": {"tdp_w": 5.0, "bf16_dense_tflops": 1.0}}, "cpu-some-new-chip", 4.0)
    assert given.loc["cpu-some-new-chip", "tdp_w"] == 5.0
    assert "h100-80gb-hbm3" in load_specs().index
