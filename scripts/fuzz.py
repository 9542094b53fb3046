"""A long fuzz campaign over mutants of the bundled scenarios (outside the test suite).

    .venv/bin/python scripts/fuzz.py --mutants 10000 --seed 1 --report /tmp/fuzz

Each mutant (see ``tests/fuzzing.py``) is written to a file, checked with ``qsim check`` and,
when valid and small, run with ``qsim run --no-figures`` in this process, under a time limit
(``--limit`` seconds, SIGALRM) so a hang is a finding too. Warnings are errors, as in the
test suite. Findings are grouped by their last traceback line (the crash class) and each
class's first mutant is saved under ``--report`` for replay.
"""

from __future__ import annotations

import argparse
import collections
import random
import resource
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from tests import fuzzing


class _TimeLimit(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _TimeLimit("time limit")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mutants", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit", type=int, default=60, help="seconds per mutant before it counts as a hang")
    parser.add_argument("--report", type=Path, default=Path("/tmp/qsim-fuzz"))
    parser.add_argument("--max-requests", type=float, default=200_000)
    parser.add_argument("--memory", type=int, default=3, help="GB of address space; more is a MemoryError")
    args = parser.parse_args()
    # A mutant that slips past the estimate must fail with MemoryError, not take the machine down.
    limit = args.memory * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    warnings.simplefilter("error")
    signal.signal(signal.SIGALRM, _alarm)
    args.report.mkdir(parents=True, exist_ok=True)
    bases = [(fuzzing.ROOT / 'scenarios' / name, data) for name, data in fuzzing.bases().items()]
    rng = random.Random(args.seed)
    classes: dict[str, list[str]] = collections.defaultdict(list)
    tally: dict[str, int] = {}
    began = time.time()
    with tempfile.TemporaryDirectory() as folder:
        for number in range(args.mutants):
            path, data = rng.choice(bases)
            mutant, touched = fuzzing.mutate(data, rng, changes=rng.choice([1, 1, 2, 3]))
            text = fuzzing.to_yaml(fuzzing.bounded(mutant, touched), rng)
            target = Path(folder) / path.name
            target.write_text(text)
            (args.report / "current.yaml").write_text(f"# from {path.name}\n" + text)
            signal.alarm(args.limit)
            try:
                found = fuzzing.exercise(target, Path(folder) / "out", max_requests=args.max_requests, tally=tally)
            except _TimeLimit:
                found = [(fuzzing.Outcome("?", None, "", "", "hang"), f"no answer within {args.limit} s")]
            finally:
                signal.alarm(0)
            for outcome, problem in found:
                key = problem if outcome.error is None else outcome.error.strip().splitlines()[-1][:160]
                key = f"{outcome.command}: {key}"
                classes[key].append(text)
                if len(classes[key]) == 1:
                    saved = args.report / f"class-{len(classes):03d}.yaml"
                    saved.write_text(f"# {key}\n# from {path.name}\n" + text)
                    print(f"[{number}] new class {len(classes)}: {key} ({saved})", flush=True)
                    if outcome.error:
                        (args.report / f"class-{len(classes):03d}.txt").write_text(outcome.error)
            if number % 250 == 0:
                print(f"[{number}] {time.time() - began:.0f}s, {len(classes)} classes", flush=True)
    print(f"\n{args.mutants} mutants in {time.time() - began:.0f}s, {len(classes)} classes")
    print(", ".join(f"{key}: {count}" for key, count in sorted(tally.items())))
    for key, texts in sorted(classes.items(), key=lambda item: -len(item[1])):
        print(f"{len(texts):6d}  {key}")
    return 1 if classes else 0


if __name__ == "__main__":
    sys.exit(main())
