"""tfp_aline: ALINE (joint amortized inference and active data acquisition) with TensorFlow Probability."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of CLI output

__version__ = "0.1.0"
