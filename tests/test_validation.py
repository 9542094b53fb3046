"""Bad scenarios: every mistake is one line naming the file, the field, the bad value and the fix.

The message form is ``FILE: FIELD.PATH: got VALUE; WHAT IS ALLOWED`` (or ``missing; ...``).
Each case writes a real file, so the file name in the message is checked too.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

import sim
from sim.model.scenario import ScenarioError, apply_overrides, load_scenario, parse_override, scenario_from_dict
from sim.model.specs import DISTRIBUTIONS, PROCESSES, ArrivalSpec, DistributionSpec, PoissonSpec
from tests.helpers import ROOT

BASE: dict[str, Any] = {
    "name": "check",
    "producers": [
        {"name": "clients", "arrivals": {"process": "poisson", "rate": "100/s", "stop": "10s"}, "timeout": "3s"}
    ],
    "queue": {"discipline": "fifo", "capacity": "unbounded"},
    "consumers": {"concurrency": 4, "service": {"dist": "exponential", "mean": "20ms"}},
}

DELETE = object()


def changed(changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of BASE with each dotted path set (or deleted with DELETE)."""
    data = copy.deepcopy(BASE)
    for path, value in changes.items():
        *parents, last = [int(k) if k.isdigit() else k for k in path.split(".")]
        node: Any = data
        for key in parents:
            node = node[key]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return data


def write(folder: Path, data: Any, name: str = "scenario.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def error_of(path: Path, overrides: Any = ()) -> str:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, overrides)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


# (id, changes, field path, the bad value as shown, words of the fix)
CASES: list[tuple[str, dict[str, Any], str, str, str]] = [
    ("unknown-top-level-key", {"nmae": "x"}, "nmae", "unknown key", "did you mean 'name'?"),
    ("unknown-nested-key", {"queue.disciplin": "lifo"}, "queue.disciplin", "unknown key", "did you mean 'discipline'?"),
    ("unknown-arrivals-key", {"producers.0.arrivals.strat": "1s"}, "producers.0.arrivals.strat", "unknown key",
     "did you mean 'start'? allowed here: process, rate, start, stop, count"),
    ("unknown-key-no-suggestion", {"consumers.zzz": 1}, "consumers.zzz", "unknown key",
     "allowed here: concurrency, service"),
    ("wrong-rate-unit", {"producers.0.arrivals.rate": "100/sec"}, "producers.0.arrivals.rate", "got '100/sec'",
     "unknown time unit 'sec'; did you mean 's'?"),
    ("rate-not-a-rate", {"producers.0.arrivals.rate": "fast"}, "producers.0.arrivals.rate", "got 'fast'",
     "e.g. 900/s, 50/min"),
    ("wrong-duration-unit", {"producers.0.timeout": "3 secs"}, "producers.0.timeout", "got '3 secs'",
     "unknown time unit 'secs'; did you mean 's'?"),
    ("negative-rate", {"producers.0.arrivals.rate": "-100/s"}, "producers.0.arrivals.rate", "got '-100/s'",
     "must be greater than 0"),
    ("zero-concurrency", {"consumers.concurrency": 0}, "consumers.concurrency", "got 0",
     "must be greater than or equal to 1"),
    ("fractional-concurrency", {"consumers.concurrency": 2.5}, "consumers.concurrency", "got 2.5",
     "must be a whole number"),
    ("boolean-concurrency", {"consumers.concurrency": True}, "consumers.concurrency", "got true",
     "must be a number, not true/false"),
    ("missing-concurrency", {"consumers.concurrency": DELETE}, "consumers.concurrency", "missing",
     "an integer >= 1"),
    ("bad-discipline", {"queue.discipline": "fifi"}, "queue.discipline", "got 'fifi'",
     "did you mean 'fifo'? must be one of: fifo, lifo, priority"),
    ("bad-overflow", {"queue.overflow": "drop-newest"}, "queue.overflow", "got 'drop-newest'",
     "must be one of: reject, drop-oldest"),
    ("bad-capacity", {"queue.capacity": "unbonded"}, "queue.capacity", "got 'unbonded'",
     "did you mean 'unbounded'? must be an integer >= 0"),
    ("negative-capacity", {"queue.capacity": -3}, "queue.capacity", "got -3", "an integer >= 0 (0 = no queue at all)"),
    ("queue-not-a-mapping", {"queue": "fifo"}, "queue", "got 'fifo'",
     "must be a mapping with keys discipline, capacity, overflow, on_expired"),
    ("bad-process", {"producers.0.arrivals.process": "poison"}, "producers.0.arrivals.process", "got 'poison'",
     "did you mean 'poisson'? must be one of: poisson, constant, burst, piecewise, trace"),
    ("missing-process", {"producers.0.arrivals.process": DELETE}, "producers.0.arrivals.process", "missing",
     "one of: poisson, constant, burst, piecewise, trace"),
    ("bad-dist", {"consumers.service.dist": "expo"}, "consumers.service.dist", "got 'expo'",
     "did you mean 'exponential'?"),
    ("missing-mean", {"consumers.service.mean": DELETE}, "consumers.service.mean", "missing", "a duration, e.g. 500ms"),
    ("service-key-of-another-dist", {"consumers.service.value": "1s"}, "consumers.service.value", "unknown key",
     "allowed here: dist, mean"),
    ("no-service-anywhere", {"consumers.service": DELETE}, "producers.0.service", "missing",
     "set consumers.service"),
    ("priority-without-priority-discipline", {"producers.0.priority": 1}, "producers.0.priority", "got 1",
     "queue.discipline: priority"),
    ("priority-out-of-range", {"queue.discipline": "priority", "producers.0.priority": 10}, "producers.0.priority",
     "got 10", "less than or equal to 9"),
    ("arrivals-never-stop", {"producers.0.arrivals.stop": DELETE}, "producers.0.arrivals",
     "got {process: poisson, rate: 100/s}", "give them stop (e.g. 60s) or count, or give the scenario until"),
    ("warmup-equal-to-until", {"until": "10s", "warmup": "10s"}, "warmup", "got '10s'", "must end before until (10s)"),
    ("warmup-after-until", {"until": "30s", "warmup": "1min"}, "warmup", "got '1min'", "must end before until (30s)"),
    ("stop-before-start", {"producers.0.arrivals.start": "20s"}, "producers.0.arrivals.stop", "got '10s'",
     "stop must be after start (20s)"),
    ("duplicate-producer-names",
     {"producers": [BASE["producers"][0], {**BASE["producers"][0], "timeout": "1s"}]},
     "producers.1.name", "got 'clients'", "producers.0 has the same name"),
    ("duplicate-default-producer-names",
     {"producers": [{"arrivals": {"process": "burst", "count": 1}}, {"arrivals": {"process": "burst", "count": 2}}]},
     "producers.1.name", "got 'clients'", "give each producer its own name"),
    ("bad-name", {"name": "My Scenario"}, "name", "got 'My Scenario'", "lowercase letters, digits"),
    ("no-producers", {"producers": []}, "producers", "got []", "give at least 1 item"),
    ("producers-not-a-list", {"producers": {"name": "clients"}}, "producers", "got {name: clients}", "must be a list"),
    ("negative-timeout", {"producers.0.timeout": "-3s"}, "producers.0.timeout", "got '-3s'", "greater than 0"),
    ("bad-timeout-distribution", {"producers.0.timeout": {"dist": "expo", "mean": "3s"}}, "producers.0.timeout.dist",
     "got 'expo'", "did you mean 'exponential'?"),
    ("lognormal-with-cv-and-sigma",
     {"consumers.service": {"dist": "lognormal", "mean": "1s", "cv": 0.5, "sigma": 0.5}},
     "consumers.service.sigma", "got 0.5", "give cv or sigma, not both"),
    ("lognormal-without-spread", {"consumers.service": {"dist": "lognormal", "mean": "1s"}}, "consumers.service.cv",
     "missing", "cv (standard deviation / mean, e.g. 0.5) or sigma"),
    ("uniform-high-below-low", {"consumers.service": {"dist": "uniform", "low": "2s", "high": "1s"}},
     "consumers.service.high", "got '1s'", "high must be >= low (2s)"),
    ("gamma-cv-not-a-number", {"consumers.service": {"dist": "gamma", "mean": "1s", "cv": "wide"}},
     "consumers.service.cv", "got 'wide'", "must be a number"),
    ("piecewise-times-not-increasing",
     {"producers.0.arrivals": {"process": "piecewise", "rates": [["10s", "1/s"], ["5s", "2/s"]], "stop": "1min"}},
     "producers.0.arrivals.rates.1.0", "got '5s'", "the times must increase"),
    ("piecewise-entry-not-a-pair",
     {"producers.0.arrivals": {"process": "piecewise", "rates": [["0s", "1/s", "2/s"]], "stop": "1min"}},
     "producers.0.arrivals.rates.0", "got [0s, 1/s, 2/s]", "must be a pair [from time, rate]"),
    ("percentile-of-100", {"report": {"percentiles": [50, 100]}}, "report.percentiles.1", "got 100",
     "must be less than 100"),
    ("repeated-percentiles", {"report": {"percentiles": [99, 99.0]}}, "report.percentiles", "got [99, 99.0]",
     "percentiles must differ"),
    ("count-not-a-number", {"producers.0.arrivals": {"process": "burst", "count": "many"}},
     "producers.0.arrivals.count", "got 'many'", "must be a whole number"),
    ("missing-consumers", {"consumers": DELETE}, "consumers", "missing", "concurrency"),
    ("negative-seed", {"seed": -1}, "seed", "got -1", "greater than or equal to 0"),
]


@pytest.mark.parametrize(("changes", "field", "value", "fix"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_field_names_file_field_value_and_fix(
    tmp_path: Path, changes: dict[str, Any], field: str, value: str, fix: str
) -> None:
    path = write(tmp_path, changed(changes))
    message = error_of(path)
    assert message.startswith(f"{path}: {field}: {value}"), message
    assert fix in message, message


def test_the_base_scenario_of_these_cases_is_valid(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, BASE))
    assert scenario.name == "check"
    assert isinstance(scenario.producers[0].arrivals, PoissonSpec)
    assert scenario.producers[0].arrivals.rate == 100.0
    assert scenario.producers[0].timeout == 3.0


def test_a_producer_may_bring_its_own_service_instead_of_the_consumers(tmp_path: Path) -> None:
    data = changed({"consumers.service": DELETE, "producers.0.service": {"dist": "constant", "value": "5ms"}})
    scenario = load_scenario(write(tmp_path, data))
    assert scenario.service_of(scenario.producers[0]).mean == 0.005


def test_until_makes_never_ending_arrivals_acceptable(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, changed({"producers.0.arrivals.stop": DELETE, "until": "1min"})))
    assert scenario.until == 60.0


# --- data files -----------------------------------------------------------------------------


def test_missing_trace_file_names_the_path_looked_for(tmp_path: Path) -> None:
    path = write(tmp_path, changed({"producers.0.arrivals": {"process": "trace", "file": "traces/missing.csv"}}))
    message = error_of(path)
    assert message.startswith(f"{path}: producers.0.arrivals.file: got 'traces/missing.csv'; cannot read ")
    assert str(tmp_path / "traces" / "missing.csv") in message  # relative to the scenario, not the cwd
    assert "No such file or directory" in message
    assert "relative to the scenario file" in message


def test_trace_file_is_found_next_to_the_scenario_from_any_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "arrivals.csv").write_text("0.5\n0.1\n")
    path = write(tmp_path, changed({"producers.0.arrivals": {"process": "trace", "file": "arrivals.csv"}}))
    monkeypatch.chdir("/")
    scenario = load_scenario(path)
    assert scenario.producers[0].arrivals.build().horizon == 0.5


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("seconds\n0.1\n0.2\nabc\n", "row 4 of "),  # a header row is fine, a later word is not
        ("0.1\nabc\n", "row 2 of "),
        ("0.1\n-0.5\n", "row 2 of "),
        ("0.1\ninf\n", "row 2 of "),
        ("", "holds no durations"),
        ("seconds\n\n", "holds no durations"),
    ],
)
def test_bad_empirical_file_names_the_row(tmp_path: Path, content: str, words: str) -> None:
    (tmp_path / "times.csv").write_text(content)
    path = write(tmp_path, changed({"consumers.service": {"dist": "empirical", "file": "times.csv"}}))
    message = error_of(path)
    assert message.startswith(f"{path}: consumers.service.file: got 'times.csv'; ")
    assert words in message


def test_empirical_file_that_is_not_text(tmp_path: Path) -> None:
    (tmp_path / "times.csv").write_bytes(b"\xff\xfe\x00\x81")
    path = write(tmp_path, changed({"consumers.service": {"dist": "empirical", "file": "times.csv"}}))
    assert "is not a text file" in error_of(path)


# --- the file itself ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ": (top level): the scenario is empty; write a mapping with the keys name, description"),
        ("# only a comment\n", ": (top level): the scenario is empty"),
        ("- a\n- b\n", ": (top level): got [a, b]; the scenario must be a mapping with the keys name"),
        ("just words\n", ": (top level): got 'just words'; the scenario must be a mapping"),
    ],
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    assert error_of(path).startswith(f"{path}{expected}")


def test_malformed_yaml_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text("name: x\nseed: 1\nproducers: [\n  {a: 1\nconsumers: {}\n")
    message = error_of(path)
    assert message.startswith(f"{path}: line 5, column 10: malformed YAML: ")
    assert message.endswith("fix the syntax")


def test_bad_indentation_is_reported_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text("name: x\nseed: 1\n  bad: indent\n")
    assert error_of(path).startswith(f"{path}: line 3, column 6: malformed YAML: mapping values are not allowed here")


def test_duplicate_key_is_refused_with_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text("name: x\nqueue:\n  capacity: 3\n  discipline: lifo\n  capacity: 4\n")
    assert error_of(path) == f"{path}: line 5, column 3: key 'capacity' appears twice (first on line 3); keep only one"


def test_unhashable_key_is_malformed_yaml_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text("? [a, b]\n: 1\n")
    assert "malformed YAML: found unhashable key" in error_of(path)


def test_python_tags_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text("name: !!python/object/apply:os.system ['true']\n")
    assert "malformed YAML: could not determine a constructor" in error_of(path)


def test_missing_scenario_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert error_of(path) == f"{path}: cannot read the scenario file (No such file or directory); check the path"


def test_scenario_file_that_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\x00")
    assert "not a text file" in error_of(path)


def test_the_name_defaults_to_the_file_name(tmp_path: Path) -> None:
    data = changed({"name": DELETE})
    assert load_scenario(write(tmp_path, data, "burst-test.yaml")).name == "burst-test"
    message = error_of(write(tmp_path, data, "Burst Test.yaml"))
    assert "name: got 'Burst Test'; use lowercase letters" in message
    assert "taken from the file name" in message


def test_validation_does_not_change_the_callers_data() -> None:
    data = changed({})
    before = copy.deepcopy(data)
    scenario = scenario_from_dict(data)
    assert data == before
    assert scenario.raw == before


def test_scenario_from_dict_names_its_source() -> None:
    with pytest.raises(ScenarioError, match=r"^scenario: queue\.discipline: got 'fifi'; "):
        scenario_from_dict(changed({"queue.discipline": "fifi"}))
    with pytest.raises(ScenarioError, match=r"^here: queue\.discipline: "):
        scenario_from_dict(changed({"queue.discipline": "fifi"}), where="here")


def test_scenario_error_is_always_one_line() -> None:
    assert str(ScenarioError("a\nb\n  c")) == "a b c"


def test_the_kinds_listed_in_messages_are_the_schemas_own() -> None:
    # The messages list sim.model.specs.PROCESSES and DISTRIBUTIONS; they must match the unions.
    for adapter, key, listed in ((TypeAdapter(ArrivalSpec), "process", PROCESSES),
                                 (TypeAdapter(DistributionSpec), "dist", DISTRIBUTIONS)):
        with pytest.raises(ValidationError) as caught:
            adapter.validate_python({key: "nothing-like-it"})
        expected = str((caught.value.errors()[0].get("ctx") or {})["expected_tags"])
        assert tuple(re.findall(r"'([^']*)'", expected)) == listed


# --- --set overrides ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("producers.0.arrivals.rate=800/s", "producers.0.arrivals.rate", "800/s"),
        ("consumers.concurrency=5", "consumers.concurrency", 5),
        ("queue.capacity=unbounded", "queue.capacity", "unbounded"),
        ("warmup=1.5", "warmup", 1.5),
        ("report.percentiles=[50, 99]", "report.percentiles", [50, 99]),
        ("description=a=b", "description", "a=b"),  # only the first '=' splits
        (" until = 10s ", "until", "10s"),
        ("description=", "description", ""),
        ("description=[unclosed", "description", "[unclosed"),  # not YAML: kept as text
    ],
)
def test_override_values_are_read_as_yaml(text: str, path: str, value: Any) -> None:
    assert parse_override(text) == (path, value)


@pytest.mark.parametrize("text", ["queue.capacity", "=5", "queue..capacity=5", ".capacity=5", "queue.=5"])
def test_malformed_overrides_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ScenarioError, match=r"write key\.path=value, e\.g\. producers\.0\.arrivals\.rate=800/s"):
        parse_override(text)


def test_overrides_set_nested_paths_and_list_items(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    scenario = load_scenario(
        path,
        [
            "producers.0.arrivals.rate=800/s",
            "consumers.concurrency=5",
            "queue.capacity=7",
            "producers.0.timeout=250ms",
        ],
    )
    assert isinstance(scenario.producers[0].arrivals, PoissonSpec)
    assert scenario.producers[0].arrivals.rate == 800.0
    assert scenario.consumers.concurrency == 5
    assert scenario.queue.capacity == 7
    assert scenario.producers[0].timeout == 0.25
    assert scenario.raw["producers"][0]["arrivals"]["rate"] == "800/s"  # as written, after overrides
    assert load_scenario(path, {"queue.capacity": "unbounded"}).queue.capacity is None


def test_overrides_create_missing_mappings(tmp_path: Path) -> None:
    data = changed({"queue": DELETE})
    assert load_scenario(write(tmp_path, data), ["queue.capacity=3"]).queue.capacity == 3
    assert load_scenario(write(tmp_path, data), ["report.bucket=100ms"]).report.bucket == 0.1
    data["queue"] = None  # written as an empty `queue:`
    assert load_scenario(write(tmp_path, data), ["queue.discipline=lifo"]).queue.discipline == "lifo"


def test_overrides_do_not_change_the_data_they_are_applied_to() -> None:
    data = changed({})
    before = copy.deepcopy(data)
    result = apply_overrides(data, {"queue.capacity": 3, "producers.0.name": "x"})
    assert data == before
    assert result["queue"]["capacity"] == 3


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("producers.3.timeout=1s", "--set producers.3.timeout: got '3', but producers is a list of 1; "
                                   "use an index from 0 to 0"),
        ("producers.clients.timeout=1s", "--set producers.clients.timeout: got 'clients', but producers is a list"),
        ("producers.-1.timeout=1s", "got '-1', but producers is a list of 1"),
        ("queue.capacity.max=3", "--set queue.capacity.max: queue.capacity is 'unbounded', a single value"),
    ],
)
def test_overrides_through_a_missing_list_item_or_a_value_are_refused(
    tmp_path: Path, override: str, words: str
) -> None:
    path = write(tmp_path, BASE)
    message = error_of(path, [override])
    assert words in message, message


def test_override_into_an_empty_list(tmp_path: Path) -> None:
    path = write(tmp_path, changed({"producers": []}))
    assert "producers is a list of 0; it is empty; set the whole list instead" in error_of(path, ["producers.0.x=1"])


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("queue.discipline=fifi", "queue.discipline: got 'fifi'; did you mean 'fifo'?"),
        ("producers.0.arrivals.rate=-5/s", "producers.0.arrivals.rate: got '-5/s'; must be greater than 0"),
        ("consumers.concurrency=0", "consumers.concurrency: got 0; must be greater than or equal to 1"),
        ("queue.capacity=unbonded", "queue.capacity: got 'unbonded'; did you mean 'unbounded'?"),
        ("queue.capcity=3", "queue.capcity: unknown key; did you mean 'capacity'?"),
        ("producers.0.priority=2", "producers.0.priority: got 2; priority is only used with queue.discipline"),
    ],
)
def test_an_override_is_validated_like_the_file(tmp_path: Path, override: str, expected: str) -> None:
    path = write(tmp_path, BASE)
    assert error_of(path, [override]).startswith(f"{path}: {expected}")


def test_overrides_on_a_file_that_is_a_list_report_the_file(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text("- a\n- b\n")
    assert "(top level): got [a, b]" in error_of(path, ["queue.capacity=3"])


def test_the_package_exports_the_api() -> None:
    assert sim.load_scenario is load_scenario
    assert sim.ScenarioError is ScenarioError


def test_a_patience_distribution_serialises_without_warnings() -> None:
    # The manifest dumps the scenario; pytest turns warnings into errors here.
    from tests.helpers import make_scenario

    scenario = make_scenario(producers=[{"arrivals": {"process": "burst", "count": 1},
                                         "timeout": {"dist": "exponential", "mean": "1s"}}])
    assert scenario.model_dump(mode="json")["producers"][0]["timeout"] == {"dist": "exponential", "mean": 1.0}


@pytest.mark.parametrize(
    ("block", "message"),
    [("plan: {vary: consumers.concurrency, vry: 1}", "plan.vry: unknown key; did you mean 'vary'?"),
     ("precision: {metric: latency_p99, relativ: 0.1}", "precision.relativ: unknown key; did you mean 'relative'?")],
)
def test_experiment_blocks_refuse_unknown_keys(tmp_path: Path, block: str, message: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("name: x\nproducers: [{arrivals: {process: burst, count: 1}}]\n"
                    "consumers: {concurrency: 1, service: {dist: constant, value: 1s}}\n" + block + "\n")
    with pytest.raises(ScenarioError) as error:
        sim.load_experiment(path)
    assert str(error.value).startswith(f"{path}: {message} allowed here: ")


def test_one_did_you_mean_for_everything() -> None:
    # Suggestions come from sim.model.errors.did_you_mean alone, so every typo reads the same.
    users = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "sim").rglob("*.py")
                   if "difflib" in path.read_text())
    assert users == ["sim/model/errors.py"]
