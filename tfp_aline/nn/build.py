"""Building the network a config describes, and starting it from a trained one."""

import keras

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
        joint=n.joint,
        joint_rank=n.joint_rank,
        joint_reward=n.joint_reward,
        query_layers=n.query_layers,
    )
    model(model.dummy_inputs(num_predictive=cfg.episodes.num_predictive_targets), compute_policy=True)
    return model


def copy_weights(model_file, model: AlineModel) -> list[str]:
    """Start `model` from a trained model.keras: every layer the two share (embedder, transformer,
    heads) gets the trained weights; a layer only `model` has (e.g. a new joint head) keeps its
    fresh ones. Returns the names of the layers copied. Raises ValueError naming the file and the
    layer when a shared layer's weights differ in shape (another network size)."""
    source = keras.models.load_model(model_file, compile=False)
    copied = []
    for layer in model.layers:
        other = getattr(source, layer.name, None)
        if not isinstance(other, keras.layers.Layer):
            continue
        mine, theirs = layer.get_weights(), other.get_weights()
        shapes = [w.shape for w in mine], [w.shape for w in theirs]
        if shapes[0] != shapes[1]:
            raise ValueError(
                f"{model_file}: layer {layer.name!r} has weights of shapes {shapes[1]}, this network's "
                f"are {shapes[0]}: init_from needs the same network sizes"
            )
        layer.set_weights(theirs)
        copied.append(layer.name)
    return copied
