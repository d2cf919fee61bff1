"""`tfp-aline serve` as a real process on a free local port, called over HTTP: a valid history, every class
of bad input, concurrent requests, and a restart that reloads the model. Needs the `serve` extra, which
.ci/run installs: nothing here is skipped."""

import concurrent.futures
import io
import shutil
import signal
import zipfile

import h5py
import httpx
import pytest
from service_shared import RUN, rows, shipped_advisors

from tfp_aline.cli.main import main
from tfp_aline.migraine.advice import Advisor
from tfp_aline.migraine.service.batched_advice import BatchedAdvisor
from tfp_aline.migraine.service.launch import ServerProcess
from tfp_aline.migraine.service.probes import advice_equal, approx_equal, bad_requests, histories, read_days

MAX_DAYS, MAX_BODY = 100, 200_000
ARGS = ["--max-days", str(MAX_DAYS), "--max-body-bytes", str(MAX_BODY)]
TOL = 1e-5  # another process and, when batched, other kernel shapes: float32 round-off only


def expected(batched, body):
    """What `tfp-aline advise --format json` says for the same days (`BatchedAdvisor` gives the same
    content as `Advisor.advise(...).to_dict()`: test_batched_advice.py; one trace instead of one per size)."""
    future = body.get("future")
    coming = rows("future", future) if future else None
    return batched.advise(rows("days", body["days"]), future_days=coming, **_kw(body))


def _kw(body):
    return {k: v for k, v in body.items() if k in ("target", "max_context")}


class Served:
    """The service on a copy of the shipped run (so that the restart test may change its model)."""

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.server = ServerProcess(run_dir, args=ARGS)

    def restart(self):
        # uvicorn finishes the requests in flight, then re-raises SIGTERM: -15 is a clean stop.
        assert self.server.stop() in (0, -signal.SIGTERM), "SIGTERM ends the service cleanly"
        self.server = ServerProcess(self.run_dir, args=ARGS)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("serve") / "migraine"
    shutil.copytree(RUN, run_dir, ignore=shutil.ignore_patterns("checkpoints", "evaluation"))
    s = Served(run_dir)
    yield s
    s.server.stop()


@pytest.fixture(scope="module")
def advisors():
    return shipped_advisors()


@pytest.fixture(scope="module")
def days():
    return read_days()


def post(url, body):
    return httpx.post(url + "/advice", json=body, timeout=60)


def test_health_and_the_generated_schema(served):
    health = httpx.get(served.server.url + "/health").json()
    assert health["status"] == "ok" and health["capacity"] == 30 and health["max_days"] == MAX_DAYS
    assert len(health["features"]) == 20 and health["parameters"][-1] == "Baseline (logit)"
    assert len(health["model_sha256"]) == 64
    schema = httpx.get(served.server.url + "/openapi.json").json()
    advice = schema["paths"]["/advice"]["post"]
    assert {"200", "400", "413", "422"} <= set(advice["responses"])
    request = schema["components"]["schemas"]["AdviceRequest"]
    assert request["required"] == ["days"] and {"future", "target", "max_context"} <= set(request["properties"])
    assert "get" in schema["paths"]["/health"]


def test_a_valid_history_gets_the_advice_the_cli_gives(served, advisors, days):
    advisor, batched = advisors
    coming = [{k: v for k, v in d.items() if k != "migraine"} for d in days[40:43]]
    for body in (
        {"days": days[:30]},
        {"days": days[10:40], "target": "sleep"},
        {"days": days[5:35], "future": coming, "target": "predictive"},
        {"days": days, "max_context": 10},  # 40 reported days: the oldest are dropped, with a warning
    ):
        r = post(served.server.url, body)
        assert r.status_code == 200, r.text
        got = r.json()
        assert advice_equal(got, expected(batched, body), TOL)
    assert got["used_days"] == 10 and got["dropped_days"] == 30 and "left out" in got["warnings"][0]
    assert [t["parameter"] for t in got["triggers"]] == list(advisor.task.parameter_names)
    assert sum(q["probability"] for q in got["next_questions"]) == pytest.approx(1.0, abs=1e-5)


def test_every_class_of_bad_input_gets_a_4xx_with_the_cli_message(served, days):
    url = served.server.url
    probes = bad_requests(days, max_days=MAX_DAYS, max_body_bytes=MAX_BODY)
    assert len(probes) >= 30
    for p in probes:
        r = httpx.post(url + "/advice", content=p.body, headers={"content-type": p.content_type}, timeout=60)
        error = r.json()["error"]
        assert r.status_code == p.status, (p.name, r.status_code, error)
        assert p.expect in error and "\n" not in error, (p.name, error)
    # A history error reads exactly as the CLI prints it after 'error: ' (CSV rows: days[1] is row 3).
    error = post(url, {"days": [days[0], dict(days[1], **{"Sleep duration (h)": "seven"})]}).json()["error"]
    assert error == "days, row 3, column 'Sleep duration (h)': expected a number in h, got 'seven'"
    assert httpx.get(url + "/advice").status_code == 405 and httpx.get(url + "/nowhere").json() == {
        "error": "Not Found"
    }
    # A chunked body (no Content-Length) above the limit is cut off too.
    chunks = (b"x" * 50_000 for _ in range(10))
    r = httpx.post(url + "/advice", content=chunks, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "larger than" in r.json()["error"]
    assert served.server.alive() and httpx.get(url + "/health").json()["status"] == "ok"
    assert post(url, {"days": days[:30]}).status_code == 200


def test_concurrent_requests_each_get_their_own_answer(served, days):
    url = served.server.url
    windows = histories(days, 30)
    alone = [post(url, {"days": w}).json() for w in windows[:8]]  # one at a time
    before = httpx.get(url + "/health").json()
    jobs = [i % 8 for i in range(64)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda i: post(url, {"days": windows[i]}), jobs))
    assert all(r.status_code == 200 for r in answers)
    for i, r in zip(jobs, answers):
        assert advice_equal(r.json(), alone[i], TOL)  # no person's numbers leak into another's
    after = httpx.get(url + "/health").json()
    people = after["people_advised"] - before["people_advised"]
    passes = after["forward_passes"] - before["forward_passes"]
    assert people == 64 and passes < people, "concurrent requests share forward passes"


def perturb_model(run_dir, shift=0.5):
    """Rewrite model.keras with the inference head's output bias moved by `shift` (another model)."""
    path = run_dir / "model.keras"
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    weights = io.BytesIO(files["model.weights.h5"])
    with h5py.File(weights, "r+") as f:
        f["inference_head/mlp/out/vars/1"][...] += shift
    files["model.weights.h5"] = weights.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)


def test_a_restart_reloads_the_model(served, days):
    body = {"days": days[:30]}
    before_health = httpx.get(served.server.url + "/health").json()
    before = post(served.server.url, body).json()
    perturb_model(served.run_dir)
    after_same_process = post(served.server.url, body).json()
    assert approx_equal(after_same_process, before, 0.0), "the model is loaded once, not per request"
    served.restart()
    health = httpx.get(served.server.url + "/health").json()
    assert health["model_sha256"] != before_health["model_sha256"]
    after = post(served.server.url, body).json()
    fresh = BatchedAdvisor(Advisor.from_run_dir(served.run_dir))  # the changed model, loaded here
    assert advice_equal(after, expected(fresh, body), TOL)
    assert not approx_equal(after["triggers"], before["triggers"], 1e-3)


def test_serve_without_the_extra_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "fastapi", None)
    assert main(["serve", "--run", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: tfp-aline serve needs the optional 'serve' extra (FastAPI, uvicorn): "
                   "pip install 'tfp_aline[serve]'"]  # fmt: skip


def test_serve_with_a_bad_run_dir_fails_in_one_line(capsys, tmp_path):
    assert main(["serve", "--run", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("missing: run directory not found")


def test_serve_refuses_zero_threads(capsys, tmp_path):
    assert main(["serve", "--run", str(tmp_path), "--threads", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --threads must be >= 1, got 0"
