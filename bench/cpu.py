"""Who used the CPU during a measurement: the whole machine, the server's
processes, and the load generator. On a shared 2-core machine this tells
whether a figure was taken on a quiet machine."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _machine() -> tuple[float, float]:
    """(busy, total) CPU seconds since boot, all cores."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user
    return (total - idle) / TICK, total / TICK


def _process(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by ``pids``."""
    used = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        used += int(fields[11]) + int(fields[12])  # utime, stime
    return used / TICK


def _ours() -> float:
    """CPU seconds of this process and its finished children (wrk)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def database_pids(name: str) -> list[int]:
    """PostgreSQL backends serving database ``name`` (their titles read
    "postgres: USER DATABASE HOST(PORT) STATE")."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres: ") and f" {name} " in title:
            pids.append(int(cmdline.parent.name))
    return pids


@dataclass
class CpuUse:
    """Percent of one core, averaged over the measurement (200 = both)."""

    machine: float
    server: float
    database: float
    load_generator: float

    @property
    def others(self) -> float:
        """Everything else: other programs on the machine."""
        used = self.server + self.database + self.load_generator
        return max(0.0, self.machine - used)

    def as_dict(self) -> dict:
        return {
            "machine_pct": round(self.machine),
            "server_pct": round(self.server),
            "database_pct": round(self.database),
            "load_generator_pct": round(self.load_generator),
            "others_pct": round(self.others),
        }


class CpuMeter:
    """CPU used during a ``with`` block by the machine, the server's
    processes, the PostgreSQL backends of database ``db_name`` (none for
    SQLite, which runs inside the server) and this process with its
    children (the load generator)."""

    def __init__(self, server_pids: list[int], db_name: str | None = None):
        self.pids = server_pids
        self.db_name = db_name

    def __enter__(self) -> CpuMeter:
        self.db_pids = database_pids(self.db_name) if self.db_name else []
        self._t = time.monotonic()
        self._machine = _machine()[0]
        self._server = _process(self.pids)
        self._db = _process(self.db_pids)
        self._ours = _ours()
        return self

    def __exit__(self, *exc) -> None:
        wall = time.monotonic() - self._t
        # Backends that appeared during the run count from their start.
        late = [p for p in database_pids(self.db_name or "") if p not in self.db_pids]
        self.use = CpuUse(
            machine=100 * (_machine()[0] - self._machine) / wall,
            server=100 * (_process(self.pids) - self._server) / wall,
            database=100 * (_process(self.db_pids + late) - self._db) / wall,
            load_generator=100 * (_ours() - self._ours) / wall,
        )


def wait_for_quiet(max_seconds: float, busy_limit: float = 25.0) -> float:
    """Wait until the machine's CPU use over one second is below
    ``busy_limit`` percent of one core, or ``max_seconds`` pass. Returns the
    last reading."""
    deadline = time.monotonic() + max_seconds
    while True:
        busy0, _ = _machine()
        time.sleep(1)
        busy = 100 * (_machine()[0] - busy0)
        if busy < busy_limit or time.monotonic() >= deadline:
            return busy
