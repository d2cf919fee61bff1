"""Building the network a config describes."""

from tfp_aline.nn.model import AlineModel


def build_model(cfg, task) -> AlineModel:
    """The network of a config, built (variables created) on dummy inputs."""
    n = cfg.network
    model = AlineModel(
        task.num_parameters,
        task.x_dim,
        task.y_dim,
        embed_dim=n.embed_dim,
        num_layers=n.num_layers,
        num_heads=n.num_heads,
        ff_dim=n.ff_dim,
        num_components=n.num_components,
        min_scale=n.min_scale,
    )
    model(model.dummy_inputs(num_predictive=cfg.episodes.num_predictive_targets), compute_policy=True)
    return model
