"""SavedModel export: loads without tfp_aline (TF2 and the TF Serving loader), equals the Python API to 1e-5."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import ROOT

from tfp_aline.cli.main import main
from tfp_aline.errors import TfpAlineError
from tfp_aline.export import SIGNATURES, export_saved_model
from tfp_aline.migraine.advice import Advisor
from tfp_aline.migraine.history import HistoryWarning

EXAMPLE = ROOT / "data" / "example_person.csv"

# Runs in a fresh interpreter: tfp_aline is made unimportable before anything else happens.
LOADER = textwrap.dedent("""
    import sys
    sys.modules["tfp_aline"] = None
    import json
    import numpy as np
    import tensorflow as tf
    try:
        import tfp_aline  # noqa: F401
        raise SystemExit("tfp_aline is importable")
    except ImportError:
        pass
    model_dir, inputs_file, out_file = sys.argv[1:]
    model = tf.saved_model.load(model_dir)
    x = dict(np.load(inputs_file))
    num_parameters = int(x.pop("num_parameters"))
    ctx = {k: x[k] for k in ("context_x", "context_y", "context_mask")}
    results = {
        "posterior": model.signatures["posterior"](**ctx, target_mask=x["target_mask"][:, :num_parameters]),
        "predictive": model.signatures["predictive"](**ctx, target_x=x["target_x"], target_mask=x["target_mask"]),
        "policy": model.signatures["policy"](
            **ctx, **{k: x[k] for k in ("target_x", "target_mask", "query_x", "taken")}),
    }
    results = {s: {k: v.numpy() for k, v in r.items()} for s, r in results.items()}
    # The TF1 session loader is what TensorFlow Serving uses: the policy signature through it too.
    with tf.compat.v1.Session(graph=tf.Graph()) as sess:
        sig = tf.compat.v1.saved_model.loader.load(sess, ["serve"], model_dir).signature_def["policy"]
        feed = {sig.inputs[k].name: x[k] for k in sig.inputs}
        results["serving_policy"] = sess.run({k: v.name for k, v in sig.outputs.items()}, feed)
    np.savez(out_file, **{f"{s}.{k}": v for s, r in results.items() for k, v in r.items()})
    print(json.dumps(sorted(model.signatures)))
""")


@pytest.fixture(scope="module")
def exported(smoke_run_dir, tmp_path_factory):
    from tfp_aline.runs import load_run

    return export_saved_model(load_run(smoke_run_dir), tmp_path_factory.mktemp("export") / "saved")


def test_fresh_process_matches_python_api(exported, smoke_run_dir, tmp_path):
    advisor = Advisor.from_run_dir(smoke_run_dir)
    with pytest.warns(HistoryWarning):
        advice = advisor.advise(EXAMPLE, target="sleep")
    np.savez(tmp_path / "inputs.npz", num_parameters=advisor.task.num_parameters, **advice.inputs)
    done = subprocess.run(
        [sys.executable, "-I", "-c", LOADER, str(exported), str(tmp_path / "inputs.npz"), str(tmp_path / "out.npz")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == sorted(SIGNATURES)
    served = dict(np.load(tmp_path / "out.npz"))
    for key, value in served.items():
        name = key.split(".", 1)[1]
        np.testing.assert_allclose(value, advice.outputs[name], atol=1e-5, err_msg=key)
    assert {k.split(".", 1)[0] for k in served} == set(SIGNATURES) | {"serving_policy"}
    assert served["policy.policy_probs"].sum() == pytest.approx(1.0, abs=1e-5)


def test_signature_file(exported, smoke_run_dir):
    info = json.loads((exported / "signature.json").read_text())
    assert list(info["signatures"]) == list(SIGNATURES)
    assert info["features"][0]["name"] == "Sleep duration (h)" and info["features"][0]["unit"] == "h"
    assert list(info["signatures"]["policy"]["inputs"]) == [
        "context_x",
        "context_y",
        "context_mask",
        "target_x",
        "target_mask",
        "query_x",
        "taken",
    ]
    assert (exported / "saved_model.pb").exists() and (exported / "README.md").exists()


def test_refuses_to_overwrite(exported, smoke_run_dir, capsys):
    before = (exported / "saved_model.pb").stat().st_mtime_ns
    assert main(["export", "--run", str(smoke_run_dir), "--out", str(exported)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (exported / "saved_model.pb").stat().st_mtime_ns == before
    (exported.parent / "a_file").write_text("x")
    with pytest.raises(TfpAlineError, match="not a folder"):
        from tfp_aline.runs import load_run

        export_saved_model(load_run(smoke_run_dir), exported.parent / "a_file")
