"""``qsim animate`` and the replay under it: every dot is where the run's records put it.

The replay is checked against the records three ways: a hand-checked trace (four requests, one
consumer, a queue of 2), an independent row-by-row reading of the records of bundled scenarios
(one stage, stages, SQS-like delivery, the Kafka and Redis broker models, retries) at many
instants, and the counters and curves against plain counts. The drawing is checked headless: a
GIF with the expected number of frames, which plays back to the frames as rendered.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib import animation
from PIL import Image

import sim
from sim.engine.records import OUTCOMES
from sim.experiments.runner import Result
from sim.model.scenario import ScenarioError
from sim.output import movie
from sim.output.animation import scene_of, snapshot
from sim.output.replay import (
    DEPARTED,
    FATES,
    HANDED_ON,
    MAX_FRAMES,
    PHASES,
    RETRIED,
    SERVING,
    UPCOMING,
    WAITING,
    departed_counts,
    frame_times,
    goodput,
    overdue,
    phases,
    replay,
    service_slots,
    waiting_counts,
)
from tests.helpers import BASE, ROOT, Cli, merge

ENCORE = ROOT / "scenarios/encore-fifo-vs-lifo.yaml"


def _trace() -> Result:
    """Arrivals at 0, 0.1, 0.2 and 0.3 s; one consumer, 1 s each; a queue of 2; clients wait 1.5 s."""
    data = merge(BASE, {"queue": {"capacity": 2}, "producers": [
        {"name": "clients", "timeout": "1.5s", "arrivals": {"process": "constant", "rate": "10/s", "count": 4}}]})
    return sim.run(sim.scenario_from_dict(data))


def test_a_hand_checked_trace() -> None:
    """Request 0 is served at once, 1 and 2 wait (and are served after their clients gave up: late), 3 finds
    the queue full (rejected at its arrival)."""
    dots = replay(_trace().runs[0], 0.0, 5.0).dots
    assert list(phases(dots, 0.05)) == [SERVING, UPCOMING, UPCOMING, UPCOMING]
    assert list(phases(dots, 0.5)) == [SERVING, WAITING, WAITING, DEPARTED]
    assert list(phases(dots, 1.75)) == [DEPARTED, SERVING, WAITING, DEPARTED]
    assert list(overdue(dots, 1.75)) == [False, True, True, False]  # past 1.6 and 1.7: their clients have gone
    assert list(overdue(dots, 1.65)) == [False, True, False, False]
    assert list(overdue(dots, 1.55)) == [False, False, False, False]
    assert [FATES[code] for code in dots.fate] == ["completed", "late", "late", "rejected"]
    assert list(service_slots(dots)) == [0, 0, 0, -1]  # one consumer: one slot, used in turn
    assert departed_counts(replay(_trace().runs[0], 0.0, 5.0).jobs, 2.5) == {"completed": 1, "late": 1,
                                                                                "rejected": 1}


def _expected_phase(arrival: float, start: float, finish: float, t: float) -> str:
    """A job's phase at ``t`` read from its record, one row at a time (independently of :func:`phases`)."""
    if t < arrival:
        return "upcoming"
    if not np.isnan(finish) and t >= finish:
        return "departed"
    if not np.isnan(start) and t >= start:
        return "serving"
    return "waiting"


def _jobs(result: Result) -> pd.DataFrame:
    run = result.runs[0]
    jobs = run.jobs if run.jobs is not None else run.requests.assign(stage="main")
    return jobs.sort_values("arrival", kind="stable").reset_index(drop=True)


CASES = {
    "one stage": (ENCORE, {"until": "200s"}),
    "stages": (ROOT / "scenarios/pubsub-fanout.yaml", {"producers.0.arrivals.stop": "5s"}),
    "broker": (ROOT / "scenarios/poison-messages-dlq.yaml", {"producers.0.arrivals.stop": "5s",
                                                               "producers.1.arrivals.stop": "5s"}),
    "kafka crash": (ROOT / "scenarios/kafka-crash-rebalance.yaml", {"producers.0.arrivals.stop": "70s",
                                                                     "until": "120s"}),
    "redis at most once": (ROOT / "scenarios/redis-pubsub-outage.yaml", {"producers.0.arrivals.stop": "45s"}),
    "retries": (ROOT / "scenarios/direct-vs-queue.yaml", {"producers.0.arrivals.count": 1500,
                                                            "consumers.concurrency": 150,
                                                            "consumers.scaling.rate": "100/10s"}),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_every_dot_is_where_its_record_puts_it(case: str) -> None:
    """All jobs drawn (no sample): at 40 instants, each dot's phase is its record's, and once departed its
    fate is its recorded outcome (or retried / handed on, which the records show by a later job)."""
    path, overrides = CASES[case]
    result = sim.run(sim.load_scenario(path, overrides))
    shown = replay(result.runs[0], 0.0, result.runs[0].records.end_time, max_dots=10**7)
    jobs = _jobs(result)
    assert len(shown.dots) == len(jobs)
    np.testing.assert_array_equal(shown.dots.arrival, jobs["arrival"].to_numpy())
    for t in np.linspace(0.0, shown.end, 40):
        expected = [_expected_phase(row.arrival, row.start, row.finish, t) for row in jobs.itertuples()]
        assert [PHASES[p] for p in phases(shown.dots, t)] == expected
    fates = pd.Series([FATES[code] for code in shown.dots.fate])
    plain = ~fates.isin(["retried", "handed_on"])
    assert (fates[plain] == jobs["outcome"].astype(str)[plain]).all()
    if case == "stages":
        handed = (fates == "handed_on").to_numpy()
        assert (jobs["stage"][handed] == "ingest").all()  # only ingest hands on, each job to both subscribers
        assert 2 * handed.sum() == (jobs["stage"] != "ingest").sum()
        assert shown.handoffs[0] == (1, 2)
    if case == "retries":
        retried = jobs[(fates == "retried").to_numpy()]
        later = jobs.groupby("request")["arrival"].max()
        assert (retried["arrival"].to_numpy() < later.loc[retried["request"]].to_numpy()).all()
        assert (fates == "retried").sum() > 100
    if case == "redis at most once":  # the subscriber's restart (30-40 s) loses what is published meanwhile
        assert (fates == "lost").sum() > 1000
    if case == "kafka crash":  # nothing is lost; the crashed consumer's messages wait for the rebalance
        assert set(fates) == {"completed"}
    if case == "broker":
        assert shown.brokered == (True,)
        assert {"dead_lettered", "completed"} <= set(fates)


def test_a_sample_draws_fewer_dots_but_the_counters_count_every_request() -> None:
    result = sim.run(sim.load_scenario(ROOT / "scenarios/burst-2k-vs-20k.yaml"))
    shown = replay(result.runs[0], 0.0, 10.0, max_dots=50)
    assert shown.sampled
    assert (shown.requests_shown, shown.requests_in_window) == (50, 20_000)
    assert len(np.unique(shown.dots.request)) == 50
    row = result.summary.iloc[0]
    assert departed_counts(shown.jobs, shown.end) == {"completed": row["completed"], "late": row["late"]}
    again = replay(result.runs[0], 0.0, 10.0, max_dots=50)
    np.testing.assert_array_equal(again.dots.request, shown.dots.request)  # the same sample every time


def test_queue_lengths_and_goodput_are_plain_counts_of_the_records() -> None:
    result = sim.run(sim.load_scenario(ENCORE, {"until": "200s"}))
    shown = replay(result.runs[0], 0.0, 200.0)
    requests = result.requests
    times = np.linspace(0.0, 200.0, 57)
    waiting = waiting_counts(shown.jobs, 1, times)[0]
    wait_end = requests["start"].fillna(requests["finish"]).fillna(np.inf)
    assert list(waiting) == [int(((requests["arrival"] <= t) & (wait_end > t)).sum()) for t in times]
    assert waiting.max() == 5  # the queue holds 5
    done = requests.loc[requests["outcome"] == "completed", "finish"]
    rate = goodput(shown.completed_at, times, 10.0)
    assert list(rate * 10) == [int(((done > t - 10) & (done <= t)).sum()) for t in times]


def test_slots_never_hold_two_dots_at_once() -> None:
    result = sim.run(sim.load_scenario(ROOT / "scenarios/tail-drop-vs-drop-oldest.yaml",
                                       {"producers.0.arrivals.stop": "3s"}))
    dots = replay(result.runs[0], 0.0, 10.0, max_dots=10**6).dots
    slots = service_slots(dots)
    served = slots >= 0
    assert served.sum() == (~np.isnan(dots.start)).sum()
    assert slots.max() + 1 <= 20  # never more than the 20 consumers
    for slot in np.unique(slots[served]):
        mine = np.flatnonzero(slots == slot)
        order = np.argsort(dots.start[mine])
        starts, finishes = dots.start[mine][order], dots.finish[mine][order]
        assert (starts[1:] >= finishes[:-1]).all()


def test_frames_follow_the_fps_and_the_speed() -> None:
    assert len(frame_times(0.0, 10.0, 10.0, 1.0)) == 101
    assert len(frame_times(2.0, 4.0, 20.0)) == 41  # real time for a short window
    times = frame_times(0.0, 60.0, 10.0)  # a minute plays in 15 s: 4x
    assert len(times) == 151
    assert times[-1] == pytest.approx(60.0)
    with pytest.raises(ScenarioError, match="at most 900"):
        frame_times(0.0, 1000.0, 10.0, 1.0)
    assert MAX_FRAMES == 900


def test_window_errors_name_the_option() -> None:
    run = _trace().runs[0]
    with pytest.raises(ScenarioError, match="--from 2s is not before --to 1s"):
        replay(run, 2.0, 1.0)
    with pytest.raises(ScenarioError, match="the run ends at"):
        replay(run, 100.0, 200.0)


def test_the_scene_draws_every_dot_of_a_frame() -> None:
    """Dots drawn at a frame = dots arrived and not handed on; a still is a matplotlib figure."""
    result = sim.run(sim.load_scenario(ENCORE))
    scene = scene_of(result, 0.0, 60.0, fps=5)
    figure = snapshot(scene, 30.0)
    frame = int(np.argmin(np.abs(scene.times - 30.0)))
    drawn = sum(len(artist.get_offsets()) for artist in scene.dots)
    visible = phases(scene.replay.dots, float(scene.times[frame])) != UPCOMING
    assert drawn == int((visible & (scene.replay.dots.fate != HANDED_ON)).sum()) > 0
    assert figure is scene.figure
    assert len(OUTCOMES) == RETRIED


def test_qsim_animate_writes_a_gif_with_every_frame(qsim: Cli, tmp_path: Path) -> None:
    out = tmp_path / "encore.gif"
    code, stdout, stderr = qsim("animate", ENCORE, "--to", "20s", "--fps", "4", "--speed", "1", "--out", out)
    assert (code, stderr) == (0, "")
    assert "81 frames" in stdout
    with Image.open(out) as image:
        assert (image.format, image.n_frames) == ("GIF", 81)  # 20 s at 4 frames per simulated second
    page = tmp_path / "encore.html"
    assert qsim("animate", ENCORE, "--to", "5s", "--fps", "2", "--out", page)[0] == 0
    assert page.read_text().count("iVBOR") == 11  # 11 PNG frames in the player
    assert set(tmp_path.iterdir()) == {out, page}  # no partial file left behind


@pytest.mark.parametrize(("args", "message"), [
    (["--out", "x.png"], "--out x.png: got a .png extension; give a .gif, .mp4 or .html file"),
    (["--from", "10s", "--to", "5s"], "--from 10s is not before --to 5s"),
    (["--from", "0.1s", "--to", "0.5s"], "no request is in the system in this window"),
    (["--from", "1h"], "the run ends at"),
    (["--fps", "0"], "--fps: got 0"),
    (["--dots", "0"], "--dots: got 0"),
    (["--to", "ten"], "--to: got 'ten'"),
    (["--to", "600s", "--speed", "0.1"], "at most 900"),
    (["--set", "queue.capacity=-1"], "queue.capacity"),
])
def test_bad_input_is_one_line_and_exit_2(qsim: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          args: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = qsim("animate", ENCORE, *args)
    assert (code, stdout) == (2, "")
    assert stderr.count("\n") == 1
    assert stderr.startswith("qsim: error: ")
    assert message in stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_mp4_without_ffmpeg_says_to_write_a_gif(qsim: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(animation.writers, "is_available", lambda name: False)
    code, _, stderr = qsim("animate", ENCORE, "--out", tmp_path / "a.mp4")
    assert code == 2
    assert "needs ffmpeg, which is not installed; write a .gif or .html instead" in stderr
    (tmp_path / "folder.gif").mkdir()
    with pytest.raises(ScenarioError, match="got a folder"):
        movie.check_output(tmp_path / "folder.gif")


def test_the_gif_decodes_to_every_frame_as_rendered() -> None:
    """Frames after the first store only their changed pixels; played back (each drawn over the previous),
    every frame is pixel for pixel the rendered one: a wrong transparent index or disposal would differ."""
    scene = scene_of(sim.run(sim.load_scenario(ENCORE)), 0.0, 20.0, fps=4)
    rendered = movie._paletted(scene)
    with Image.open(io.BytesIO(movie.gif_bytes(scene))) as image:
        assert image.n_frames == len(rendered)
        for k in range(image.n_frames):
            image.seek(k)
            played = np.asarray(image.convert("RGB"))
            np.testing.assert_array_equal(played, np.asarray(rendered[k].convert("RGB")), err_msg=f"frame {k}")


def test_it_runs_headless(tmp_path: Path) -> None:
    """No display, the Agg backend: the command a CI machine would run."""
    environment = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "WAYLAND_DISPLAY")}
    environment["MPLBACKEND"] = "Agg"
    out = tmp_path / "burst.gif"
    done = subprocess.run([sys.executable, "-m", "sim", "animate", str(ROOT / "scenarios/burst-2k-vs-20k.yaml"),
                           "--to", "2s", "--fps", "5", "--out", str(out)], capture_output=True, text=True,
                          env=environment, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "of 20,000 requests drawn" in done.stdout
    with Image.open(out) as image:
        assert image.n_frames == 11
