"""``qsim evaluate``: one workload and fault schedule through every broker, and the scorecard it writes."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.analysis.brokered import recovery_time
from sim.cli import main
from sim.engine.faults import crash_times
from sim.engine.streams import replication_seeds
from sim.experiments.evaluate import DEFAULT_ARMS, load_evaluation
from tests.helpers import ROOT

SCORECARD = ROOT / "scenarios" / "mq-scorecard.yaml"
SMALL = ["--set", "until=50s", "--set", "producers.0.arrivals.stop=40s", "--set", "producers.0.arrivals.rate=60/s",
         "--set", "faults.0.at=10s", "--set", "faults.0.restart=5s", "--set", "faults.1.start=25s",
         "--set", "faults.1.end=28s", "--replications", "2", "--workers", "1"]
"""The shipped scorecard, shortened so the whole evaluation runs in seconds."""


def test_evaluate_writes_a_scorecard_with_every_broker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "card"
    assert main(["evaluate", str(SCORECARD), "--out", str(out), *SMALL]) == 0
    printed = capsys.readouterr().out
    for broker in DEFAULT_ARMS:
        assert re.search(rf"^\s*{re.escape(broker)}\s", printed, flags=re.M), broker
    assert "criteria: performance" in printed
    card = pd.read_csv(out / "scorecard.csv")
    assert set(card["broker"]) == set(DEFAULT_ARMS)
    assert set(card["criterion"]) == {"performance", "reliability", "scalability", "cost"}
    assert {"throughput", "latency_p99", "messages_lost", "duplicates", "out_of_order", "max_in_system",
            "recovery_0", "recovery_1", "cost_usd"} <= set(card["metric"])
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 2 * len(DEFAULT_ARMS)
    # Common random numbers: every broker saw the same messages.
    summary = pd.read_csv(out / "summary.csv")
    first = summary[summary["producer"] == "all"]
    assert first.groupby("replication")["offered"].nunique().max() == 1
    # The broker outage refuses sends; a direct call has no broker to lose them, the brokers do.
    lost = card[card["metric"] == "messages_lost"].set_index("broker")["mean"]
    assert lost["kafka"] > lost["direct"]
    assert lost["redis-pubsub"] >= lost["kafka"]  # at most once: it also loses what its crashed consumers held
    # Ordered brokers keep every key in order, publish hops included; the others reorder.
    order = card[card["metric"] == "out_of_order"].set_index("broker")["mean"]
    assert order["kafka"] == order["sqs-fifo"] == 0
    assert order["rabbitmq"] > 0
    # Only SQS, SQS FIFO and Pub/Sub are priced per use.
    cost = card[card["metric"] == "cost_usd"].set_index("broker")["mean"]
    assert cost[["sqs", "sqs-fifo", "gcp-pubsub"]].notna().all()
    assert cost[["kafka", "rabbitmq"]].isna().all()
    assert cost["sqs-fifo"] > cost["sqs"]
    for name in ("figures/scorecard.png", "figures/backlog.png", "figures/latency-cdf.png", "report.md",
                 "manifest.json", "timeseries.csv", "comparison.csv"):
        assert (out / name).stat().st_size > 0
    page = (out / "report.html").read_text()
    assert "does not judge" in page
    assert "operability" in page
    assert "security" in page
    assert "http://" not in page.replace("http://www.w3.org", "")
    assert "<script" not in page


def test_bad_broker_names_and_settings_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(SCORECARD), "--brokers", "sqs,kafak", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == ("qsim: error: --brokers: got 'kafak'; did you mean 'kafka'? must be "
                                               "one of: direct, queue, sqs, sqs-fifo, kafka, rabbitmq, redis-pubsub, "
                                               "gcp-pubsub")
    assert main(["evaluate", str(SCORECARD), "--set", "evaluate.settings.kafka.partitions=0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "mq-scorecard.yaml: evaluate.settings.kafka.partitions: got 0; must be greater than or equal to 1" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(SCORECARD.read_text().replace("replications: 5", "replications: 1"))
    assert main(["check", str(bad)]) == 2
    assert "evaluate.replications: got 1; must be an integer >= 2" in capsys.readouterr().err
    assert main(["evaluate", str(SCORECARD), "--brokers", "sqs,sqs"]) == 2
    assert "'sqs' appears twice" in capsys.readouterr().err


def test_every_arm_gets_the_same_fault_schedule() -> None:
    evaluation = load_evaluation(SCORECARD, {"faults": [{"kind": "crash", "rate": "2/min", "stop": "150s",
                                                         "restart": "5s"}]})
    times = [crash_times(point.scenario, replication_seeds(7, 1), 180.0) for point in evaluation.arms.points]
    assert times[0][0]
    assert all(t == times[0] for t in times)
    assert [point.scenario.queue.broker.kind if point.scenario.queue and point.scenario.queue.broker else "direct"
            for point in evaluation.arms.points] == list(DEFAULT_ARMS)


def test_recovery_is_measured_from_the_end_of_the_fault() -> None:
    time = np.arange(0.0, 20.0)
    backlog = np.array([2.0] * 10 + [30.0, 25.0, 12.0, 2.5, 2.0] + [2.0] * 5)
    # Fault 10-11; the pre-fault level is 2 (the threshold 3): back in the bucket starting at 13.
    assert recovery_time(time, backlog, 10.0, 11.0) == 2.0
    assert recovery_time(time, np.where(time >= 10, 50.0, 2.0), 10.0, 11.0) == math.inf
