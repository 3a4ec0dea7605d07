import os
import time
from pathlib import Path

import pytest

from llm_energy import UserError
from llm_energy.meters import CpuEstimateMeter, RaplMeter, make_meter, rapl_domains


def _busy(seconds):
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        x += 1
    return x


def test_cpu_estimate_is_cpu_seconds_times_watts():
    meter = CpuEstimateMeter(watts_per_core=10.0)
    t0 = time.process_time()
    with meter.window() as w:
        _busy(0.3)
    cpu = time.process_time() - t0
    assert w.energy_source == "cpu-estimate"
    assert w.energy_j == pytest.approx(cpu * 10.0, rel=0.2)
    assert w.duration_s >= 0.3 * 0.9
    with meter.window() as idle:
        time.sleep(0.3)
    assert idle.energy_j < w.energy_j / 5


def test_cpu_estimate_counts_child_processes():
    import subprocess
    import sys

    meter = CpuEstimateMeter(watts_per_core=1.0)
    with meter.window() as w:
        child = subprocess.Popen([sys.executable, "-c",
                                  "import time\nend=time.process_time()+0.5\nwhile time.process_time()<end: pass\n"
                                  "time.sleep(1.0)"])
        time.sleep(1.0)  # the child has spun 0.5 s of CPU and is still alive when the window ends
    child.wait()
    assert w.energy_j >= 0.4


def _fake_rapl(root: Path, energy_uj: int, max_uj: int):
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "name").write_text("package-0\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    dram = zone / "intel-rapl:0:0"
    dram.mkdir(exist_ok=True)
    (dram / "name").write_text("dram\n")
    (dram / "energy_uj").write_text("0\n")
    (dram / "max_energy_range_uj").write_text(f"{max_uj}\n")
    core = zone / "intel-rapl:0:1"
    core.mkdir(exist_ok=True)
    (core / "name").write_text("core\n")
    (core / "energy_uj").write_text("5\n")
    (core / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return zone


def test_rapl_sums_package_and_dram_and_handles_wraparound(tmp_path):
    zone = _fake_rapl(tmp_path, energy_uj=900_000, max_uj=1_000_000)
    domains = rapl_domains(tmp_path)
    assert [d.name for d in domains] == ["intel-rapl:0:package-0", "intel-rapl:0:0:dram"]  # core is skipped
    meter = RaplMeter(domains)
    with meter.window() as w:
        # package goes 900,000 -> wraps at 1,000,000 -> 200,000: +300,000 uJ; dram +50,000 uJ
        (zone / "energy_uj").write_text("200000\n")
        (zone / "intel-rapl:0:0" / "energy_uj").write_text("50000\n")
    assert w.energy_source == "rapl"
    assert w.energy_j == pytest.approx(0.35)


def test_require_measured_refuses_the_estimate(monkeypatch):
    monkeypatch.setattr("llm_energy.meters.rapl_domains", lambda root=None: [])
    monkeypatch.setattr("llm_energy.hardware.nvml_gpus", lambda: [])
    with pytest.raises(UserError, match="only the CPU-time estimate"):
        make_meter("auto", require_measured=True)
    with pytest.raises(UserError, match="meter 'rapl' is not available"):
        make_meter("rapl")
    assert make_meter("auto").source == "cpu-estimate"
