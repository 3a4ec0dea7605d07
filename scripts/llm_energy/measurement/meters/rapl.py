"""RAPL: the CPU package and DRAM energy counters in /sys/class/powercap (bare-metal Intel and AMD)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from llm_energy import UserError
from llm_energy.measurement.meters.base import Windowed

log = logging.getLogger(__name__)


POWERCAP = Path("/sys/class/powercap")

@dataclass
class RaplDomain:
    name: str
    path: Path
    max_uj: int

def rapl_domains(root: Path = POWERCAP) -> list[RaplDomain]:
    """Readable top-level package and DRAM domains (``intel-rapl:N`` and their ``dram`` children)."""
    found = []
    if not root.is_dir():
        return found
    for zone in sorted(root.glob("intel-rapl:*")):
        for dom in [zone, *sorted(zone.glob("intel-rapl:*:*"))]:
            try:
                name = (dom / "name").read_text().strip()
                if dom != zone and name != "dram":
                    continue  # core/uncore are inside the package domain already
                int((dom / "energy_uj").read_text())
                max_uj = int((dom / "max_energy_range_uj").read_text())
            except (OSError, ValueError):
                continue
            found.append(RaplDomain(f"{dom.name}:{name}", dom, max_uj))
    return found

class RaplMeter(Windowed):
    """Sum of RAPL package and DRAM counters, wrap-around handled with ``max_energy_range_uj``."""

    source = "rapl"

    def __init__(self, domains: list[RaplDomain]):
        if not domains:
            raise UserError("RAPL is not readable on this machine (/sys/class/powercap)")
        self.domains = domains
        self._last = [self._raw(d) for d in domains]
        self._total_uj = 0

    @staticmethod
    def _raw(domain: RaplDomain) -> int:
        return int((domain.path / "energy_uj").read_text())

    def read(self) -> float:
        for i, dom in enumerate(self.domains):
            now = self._raw(dom)
            delta = now - self._last[i]
            if delta < 0:  # the counter wrapped once since the last read
                delta += dom.max_uj
            self._total_uj += delta
            self._last[i] = now
        return self._total_uj / 1e6

    def describe(self) -> dict:
        return {"energy_source": self.source, "meter_detail": "+".join(d.name for d in self.domains)}
