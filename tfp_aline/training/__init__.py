"""Training: losses, the compiled rollout, the train step, logging, checkpoints."""
