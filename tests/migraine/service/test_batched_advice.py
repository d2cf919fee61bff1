"""The service's batched path gives the same advice as `Advisor.advise(...).to_dict()`, for one person
and for people of different sizes sharing a forward pass."""

import json

import numpy as np
import pytest
from service_shared import rows, shipped_advisors

from tfp_aline.migraine.mixtures import MIXTURE_KEYS
from tfp_aline.migraine.service.probes import advice_equal, histories, read_days

# The padded batch and the single call run different kernels (other shapes): float32 round-off only.
TOL = 1e-5


@pytest.fixture
def advisors():
    return shipped_advisors()


def cases():
    days = read_days()
    windows = histories(days, 30)
    no_dates = [{k: v for k, v in d.items() if k != "date"} for d in days[:12]]
    coming = [{k: v for k, v in d.items() if k != "migraine"} for d in days[40:45]]
    return [
        ("30 days", rows("days", windows[0]), {}),
        ("30 days, later window", rows("days", windows[17]), {}),
        ("all 60 days (older ones dropped)", rows("days", days), {}),
        ("no dates", rows("days", no_dates), {}),
        ("predictive", rows("days", windows[3]), {"future_days": rows("future", coming), "target": "predictive"}),
        ("a group and a parameter", rows("days", windows[5]), {"target": ("sleep", "Caffeine (mg)")}),
        ("max_context 4", rows("days", windows[8]), {"max_context": 4}),
        ("everything reported", rows("days", [dict(d, migraine=0) for d in windows[2]]), {}),
    ]  # fmt: skip


def test_advice_without_dates_is_json(advisors):
    # Regression: `advise --format json` failed on a history without dates (NaT in to_dict).
    advisor, _ = advisors
    days = [{k: v for k, v in d.items() if k != "date"} for d in read_days()[:12]]
    content = advisor.advise(rows("days", days)).to_dict()
    assert json.loads(json.dumps(content)) == content
    assert [r["date"] for r in content["risk"]] == [None] * len(content["risk"])


def test_one_at_a_time_matches_advisor(advisors):
    advisor, batched = advisors
    for name, history, kw in cases()[:2]:  # every case again, batched, below
        expected = advisor.advise(history, **kw).to_dict()
        assert advice_equal(batched.advise(history, **kw), expected, TOL), name


def test_a_mixed_batch_matches_each_person_alone(advisors):
    advisor, batched = advisors
    people = cases()
    prepared = [batched.prepare(h, **kw) for _, h, kw in people]
    outputs = batched.forward(prepared)
    assert len(outputs) == len(people)
    for (name, history, kw), p, out in zip(people, prepared, outputs):
        got = batched.finish(p, out)
        assert advice_equal(got, advisor.advise(history, **kw).to_dict(), TOL), name
        # Padding never reaches a person: as many questions as unreported days, probabilities sum to 1.
        assert len(got["next_questions"]) == int((~p.history.reported).sum())
        if got["next_questions"]:
            assert sum(q["probability"] for q in got["next_questions"]) == pytest.approx(1.0, abs=1e-5)


def test_a_persons_check_does_not_depend_on_who_shares_the_batch(advisors):
    # Each person's draws come from the same seed alone: the answer to a history cannot change with the load.
    advisor, batched = advisors
    windows = histories(read_days(), 30)
    first = batched.prepare(rows("days", windows[0]))
    size = lambda p: len(p.inputs["context_mask"])  # noqa: E731
    other = next(q for q in (batched.prepare(rows("days", w)) for w in windows[9:]) if size(q) == size(first))
    people = [first, other]  # as many context days each, so that their inputs stack without padding
    outputs = batched.forward(people)
    keys = ("context_x", "context_y", "context_mask")
    stack = lambda ds, ks: {k: np.stack([d[k] for d in ds]) for k in ks}  # noqa: E731
    both = advisor.check_draws(stack([p.inputs for p in people], keys), stack(outputs, MIXTURE_KEYS))
    alone = advisor.check_draws(stack([people[0].inputs], keys), stack(outputs[:1], MIXTURE_KEYS))
    np.testing.assert_array_equal(both.samples[:, :1], alone.samples)
    np.testing.assert_array_equal(both.khat[:1], alone.khat)
    assert not np.array_equal(both.samples[:, 0], both.samples[:, 1])  # two people, two posteriors
    # The batch's check is the one the forward pass hands to each person.
    np.testing.assert_array_equal(outputs[1]["check"].khat, both.khat[1:])
