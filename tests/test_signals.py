"""A killed qsim leaves nothing behind: no worker, forkserver or resource tracker, no pipe held open."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

LONG_SWEEP = """\
# A sweep long enough to be killed half-way: 12 runs of 100,000 requests.
name: long-sweep
seed: 1
replications: 4
producers:
  - arrivals: {process: poisson, rate: 1000/s, count: 100000}
consumers:
  concurrency: 2
  service: {dist: exponential, mean: 1ms}
sweep:
  consumers.concurrency: [2, 3, 4]
"""

WITH_FAULTHANDLER = ("import faulthandler, signal, sys; faulthandler.register(signal.SIGUSR1, all_threads=True); "
                     "from sim.cli import main; sys.exit(main(sys.argv[1:]))")

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table in /proc")


def _group(pgid: int) -> list[str]:
    """Live (not zombie) processes of process group ``pgid``, as 'pid command'."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(f"{entry.name} {command[:120]}")
    return found


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killing_qsim_ends_every_process_it_started_and_closes_the_pipes(sent: signal.Signals,
                                                                         tmp_path: Path) -> None:
    scenario = tmp_path / "long.yaml"
    scenario.write_text(LONG_SWEEP)
    out = tmp_path / "out"
    # ``python -m sim`` with a faulthandler on SIGUSR1, so a hang can say where it is stuck.
    command = [sys.executable, "-c", WITH_FAULTHANDLER, "run", str(scenario), "--out", str(out), "--workers", "2",
               "--no-figures"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not list((out / "cache").glob("*.npz")) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert process.poll() is None, "the sweep ended before it could be killed: make it longer"
        assert len(_group(process.pid)) >= 4, _group(process.pid)  # qsim, workers, forkserver, resource tracker
        os.kill(process.pid, sent)
        # communicate returns only when both pipes reach EOF: every process holding them has exited.
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            left = _group(process.pid)
            if process.poll() is None:
                os.kill(process.pid, signal.SIGUSR1)  # dump every thread's stack to stderr
                time.sleep(1)
            os.killpg(process.pid, signal.SIGKILL)
            _, err = process.communicate(timeout=10)
            pytest.fail(f"the pipes stayed open; processes left: {left}; stderr: {err.decode()[-3000:]}")
        waited = time.monotonic() + 5
        while _group(process.pid) and time.monotonic() < waited:
            time.sleep(0.05)
        assert _group(process.pid) == []
    finally:
        if process.poll() is None or _group(process.pid):
            os.killpg(process.pid, signal.SIGKILL)  # never leave a stray process behind a failed test
            process.wait(timeout=10)
    if sent == signal.SIGTERM:
        assert process.returncode == 143
        last = err.decode().replace("\r", "\n").strip().splitlines()[-1]
        kept = len(list((out / "cache").glob("*.npz")))
        assert last == (f"qsim: terminated; {kept} finished runs are kept in {out / 'cache'}: "
                        "run the same command to resume")
        assert "Traceback" not in err.decode(), err.decode()[-3000:]
    else:
        assert process.returncode == -signal.SIGKILL
