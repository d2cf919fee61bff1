"""Simulators (TFP only, no Keras) behind one interface, `Task`."""
from tfp_aline.tasks.base import Task
from tfp_aline.tasks.migraine import MigraineModelConfig, MigraineTask

__all__ = ["Task", "MigraineTask", "MigraineModelConfig"]
