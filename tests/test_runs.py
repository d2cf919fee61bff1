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


def test_sample_people_follows_the_run_config_and_seed(smoke_run_dir):
    run = load_run(smoke_run_dir)
    e = run.cfg.episodes
    a = run.sample_people(3, [7, 1])
    b = run.sample_people(3, [7, 1])
    c = run.sample_people(3, [7, 2])
    assert a.theta.shape == (3, run.task.num_parameters)
    assert a.query_x.shape[:2] == (3, e.num_candidates)
    assert a.context_x.shape[1] == e.num_initial_context and a.target_x.shape[1] == e.num_predictive_targets
    np.testing.assert_array_equal(a.theta.numpy(), b.theta.numpy())
    assert not np.allclose(a.theta.numpy(), c.theta.numpy())
