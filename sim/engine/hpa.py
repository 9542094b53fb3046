"""The Kubernetes HorizontalPodAutoscaler's rule, step by step, with no clock of its own.

One call of :meth:`Hpa.sync` is one sync of the controller (every 15 s by default), in the
order of the Kubernetes controller (``docs/autoscaling.md`` has each rule with its source):

1. **recommend** - the metric's ratio to its target, ``usage / (ready x target)``; within the
   tolerance of 1 nothing changes, else ``desired = ceil(usage / target)``, which is
   ``ceil(ready x metric / target)`` for a per-consumer metric. In a scale-up on utilization,
   consumers still starting count as idle (the controller's caution with not-yet-ready pods);
2. **stabilize** - the recommendation is kept between the lowest recommendation of the
   scale-up window and the highest of the scale-down window (by default: no window up, 300 s
   down, so the pool shrinks only to the highest recommendation of the last five minutes);
3. **limit** - each policy allows a change relative to the consumers at the start of its
   period (``pods`` consumers, or ``percent`` %, counting this controller's own changes within
   the period); ``select`` takes the most (``max``) or least (``min``) permissive one;
4. **clamp** - to ``[min, max]``.

``usage`` is what the desired count is proportional to: messages waiting or in service
(``backlog``), busy consumer-equivalents (``utilization`` x ready) or the oldest message's age
x ready (``oldest_age``). It is NaN when the metric cannot be read (no consumer ready to
measure utilization): the controller then keeps the current count.
"""

from __future__ import annotations

import math
from collections import deque

from sim.model.autoscale_specs import AutoscaleSpec, ScalingRulesSpec

ROUNDING = 1e-9
"""``ceil`` of a ratio computed in floating point: 10 / 0.1 is 100.00000000000001, not 101 consumers."""


def _ceil(value: float) -> int:
    return math.ceil(value - ROUNDING)


def _changed_within(events: deque[tuple[float, int]], now: float, period: float) -> int:
    """Consumers added (or removed) by events strictly within ``period`` before ``now``."""
    return sum(change for time, change in events if time > now - period)


class Hpa:
    """The controller's memory (recommendations, its own scale events) and its rule.

    ``initial`` is the desired count at t = 0. ``floor`` is the least it scales down to: ``min``,
    or 1 when ``min`` is 0 (scaling to and from zero is KEDA's part, in :mod:`sim.engine.autoscaled`).
    """

    def __init__(self, spec: AutoscaleSpec, initial: int) -> None:
        self.spec = spec
        self.floor = max(1, spec.min)
        # At t = 0 the controller has been recommending the initial count, as if it had been
        # running before: a pool does not shrink in the first window only because the run started.
        self.recommendations: deque[tuple[float, int]] = deque([(0.0, initial)])
        self.scaled_up: deque[tuple[float, int]] = deque()
        self.scaled_down: deque[tuple[float, int]] = deque()

    def sync(self, now: float, current: int, ready: int, starting: int, usage: float) -> int:
        """The desired consumers after one sync at ``now`` (``current``: desired so far)."""
        spec = self.spec
        raw = self.recommend(current, ready, starting, usage)
        wanted = self._stabilize(now, current, raw)
        if wanted > current:
            limit = max(current, self._limit_up(now, current, spec.scale_up))
            wanted = min(wanted, spec.max, limit)
        elif wanted < current:
            limit = min(current, self._limit_down(now, current, spec.scale_down))
            wanted = max(wanted, self.floor, limit)
        if wanted > current:
            self.scaled_up.append((now, wanted - current))
        elif wanted < current:
            self.scaled_down.append((now, current - wanted))
        self._forget(now)
        return wanted

    def recommend(self, current: int, ready: int, starting: int, usage: float) -> int:
        """Step 1: the metric's recommendation, before stabilization and limits."""
        spec = self.spec
        if math.isnan(usage):
            return current
        if ready == 0:
            # A total over no ready consumer is an infinite ratio: scale to the total's need.
            return _ceil(usage / spec.target) if spec.metric == "backlog" and usage > 0 else current
        ratio = usage / (ready * spec.target)
        if spec.metric == "utilization" and ratio > 1 + spec.tolerance and starting:
            if usage / ((ready + starting) * spec.target) <= 1 + spec.tolerance:
                return current
        elif abs(ratio - 1) <= spec.tolerance:
            return current
        return _ceil(usage / spec.target)

    def _stabilize(self, now: float, current: int, raw: int) -> int:
        """Step 2: between the lowest recommendation of the up window and the highest of the down window."""
        up_window, down_window = self.spec.scale_up.stabilization, self.spec.scale_down.stabilization
        lowest = highest = raw
        for time, recommended in self.recommendations:
            if time > now - up_window:
                lowest = min(lowest, recommended)
            if time > now - down_window:
                highest = max(highest, recommended)
        self.recommendations.append((now, raw))
        return min(max(current, lowest), highest)

    def _limit_up(self, now: float, current: int, rules: ScalingRulesSpec) -> int:
        """Step 3 upwards: the most consumers the policies allow now."""
        if rules.select == "disabled":
            return current
        proposals = []
        for policy in rules.policies:
            start = (current - _changed_within(self.scaled_up, now, policy.period)
                     + _changed_within(self.scaled_down, now, policy.period))
            if policy.pods is not None:
                proposals.append(start + policy.pods)
            else:
                assert policy.percent is not None
                proposals.append(_ceil(start * (1 + policy.percent / 100)))
        return max(proposals) if rules.select == "max" else min(proposals)

    def _limit_down(self, now: float, current: int, rules: ScalingRulesSpec) -> int:
        """Step 3 downwards: the fewest consumers the policies allow now."""
        if rules.select == "disabled":
            return current
        proposals = []
        for policy in rules.policies:
            start = (current - _changed_within(self.scaled_up, now, policy.period)
                     + _changed_within(self.scaled_down, now, policy.period))
            if policy.pods is not None:
                proposals.append(start - policy.pods)
            else:
                assert policy.percent is not None
                proposals.append(math.floor(start * (1 - policy.percent / 100) + ROUNDING))
        return min(proposals) if rules.select == "max" else max(proposals)

    def _forget(self, now: float) -> None:
        """Drop what no window or period can look back to any more."""
        spec = self.spec
        horizon = max(spec.scale_up.stabilization, spec.scale_down.stabilization)
        while self.recommendations and self.recommendations[0][0] <= now - horizon:
            self.recommendations.popleft()
        for events, rules in ((self.scaled_up, spec.scale_up), (self.scaled_down, spec.scale_down)):
            longest = max(policy.period for policy in rules.policies)
            while events and events[0][0] <= now - longest:
                events.popleft()
