import numpy as np

from tfp_aline.runs import load_run


def test_load_run_model_and_checkpoint_agree(smoke_run_dir):
    a = load_run(smoke_run_dir)
    b = load_run(smoke_run_dir, use_checkpoint=True)
    inp = a.model.dummy_inputs(batch_size=2, num_context=3, num_candidates=4, num_predictive=3)
    oa, ob = a.model(inp), b.model(inp)
    for k in oa:
        np.testing.assert_allclose(oa[k].numpy(), ob[k].numpy(), atol=1e-6)
    assert a.cfg.name == "smoke" and a.task.num_parameters == 21
