"""Device discovery and the tf.distribute strategy a run uses."""

import tensorflow as tf

from tfp_aline.errors import ConfigError


def describe_devices() -> str:
    """'2 x GPU (...)' or 'CPU (no GPU found)', for the log (the CLI hides TensorFlow's own lines)."""
    from tfp_aline.quiet import gpu_driver_present

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return f"{len(gpus)} x GPU ({', '.join(g.name for g in gpus)})"
    if gpu_driver_present():  # a driver but no usable GPU: TensorFlow's logs say why
        return "CPU (an NVIDIA driver is present but TensorFlow found no usable GPU; --verbose shows why)"
    return "CPU (no GPU found)"


def make_strategy(name: str) -> tf.distribute.Strategy:
    """'default' (one device: a GPU if visible, else CPU), 'mirrored' (all local GPUs, or the
    logical CPUs a test configured), 'multi_worker' (TF_CONFIG describes the cluster)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"training.strategy = {name!r}: expected default, mirrored or multi_worker")


def set_mixed_precision(enabled: bool):
    """Mixed precision: bfloat16 compute, float32 variables and heads.

    bfloat16 (not float16) on every device: it needs no loss scaling in our hand-written tape
    step, and the GPU path then computes exactly what the CPU tests check. GPUs from Ampere
    on run it natively.
    """
    import keras

    policy = "mixed_bfloat16" if enabled else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy
