"""The names of the files `tfp-aline train` writes into a run folder, in one place (no imports:
the folder checks of `paths.py` and the run loading of `runs.py` both read them)."""

CONFIG_FILE = "config.yaml"  # the resolved config, as trained
MODEL_FILE = "model.keras"  # the final model
CHECKPOINT_DIR = "checkpoints"  # the TensorFlow checkpoints, for resuming
CHECKPOINT_INDEX = "checkpoint"  # the index file TensorFlow writes inside CHECKPOINT_DIR
EVALUATION_FILE = "evaluation.json"  # the policy-vs-random comparison at the end of training
