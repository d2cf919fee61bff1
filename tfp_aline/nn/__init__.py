"""Keras 3 layers of the ALINE network; tensors in, tensors out (no tfd objects)."""

from tfp_aline.nn.embedders import MLP, TokenEmbedder
from tfp_aline.nn.heads import LogitHead, MixtureHead
from tfp_aline.nn.transformer import AlineTransformer, TransformerLayer

__all__ = ["MLP", "TokenEmbedder", "TransformerLayer", "AlineTransformer", "MixtureHead", "LogitHead"]
