"""The ALINE network: tensors through Keras layers, tfd posterior/predictive/policy objects at its edge."""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_aline.core.choice import TAKEN_LOGIT, choice_noise, choose
from tfp_aline.core.joint import JOINT_KEYS, joint_keys, joint_posterior
from tfp_aline.nn import AlineTransformer, LogitHead, MixtureHead, TokenEmbedder
from tfp_aline.nn.joint import JOINTS, CopulaHead, JointHead

tfd = tfp.distributions


HIDDEN_DIM = 128  # width of the embedder and head MLPs, as in the paper


@keras.saving.register_keras_serializable(package="tfp_aline")
class AlineModel(keras.Model):
    """Amortized posterior, posterior predictive and acquisition policy in one transformer.

    `call(inputs, compute_policy=True)` maps a dict of tensors (see `call`) to a dict of tensors;
    `posterior`, `predictive`, `policy` and `select` turn those into tfd objects or choices.
    The weights do not depend on any input size, so `model.build()` creates them all without
    inputs (calling the model once, e.g. `model(model.dummy_inputs())`, does the same); build
    before `model.save(...)` or checkpointing.
    """

    def __init__(
        self,
        num_parameters,
        x_dim,
        y_dim=1,
        embed_dim=32,
        num_layers=3,
        num_heads=4,
        ff_dim=128,
        num_components=10,
        min_scale=1e-3,
        joint="none",
        joint_rank=4,
        joint_reward=False,
        query_layers=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_parameters = num_parameters
        self.x_dim = x_dim
        self.y_dim = y_dim
        self.embed_dim = embed_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.ff_dim = ff_dim
        self.num_components = num_components
        self.min_scale = min_scale
        if joint not in JOINTS:
            raise ValueError(f"joint {joint!r}: expected one of {JOINTS}")
        self.joint, self.joint_rank, self.joint_reward = joint, joint_rank, bool(joint_reward)
        self.embedder = TokenEmbedder(num_parameters, x_dim, y_dim, embed_dim, HIDDEN_DIM, name="embedder")
        self.query_layers = query_layers
        self.transformer = AlineTransformer(
            embed_dim, num_layers, num_heads, ff_dim, query_layers=query_layers, name="transformer"
        )
        self.inference_head = MixtureHead(num_components, HIDDEN_DIM, min_scale, name="inference_head")
        self.predictive_head = LogitHead(HIDDEN_DIM, name="predictive_head")
        self.policy_head = LogitHead(HIDDEN_DIM, name="policy_head")
        self.joint_head = None
        if joint == "mixture_tril":
            self.joint_head = JointHead(num_components, joint_rank, HIDDEN_DIM, min_scale, name="joint_head")
        elif joint == "copula":
            self.joint_head = CopulaHead(joint_rank, HIDDEN_DIM, name="joint_head")

    @property
    def has_joint(self) -> bool:
        """Whether the network also outputs a joint posterior over all parameters (`network.joint`)."""
        return self.joint_head is not None

    def build(self, input_shape=None):
        """Creates every weight; `input_shape` is ignored (weight shapes follow from the config)."""
        token_shape = (None, None, self.embed_dim)
        self.embedder.build()
        self.transformer.build()
        self.inference_head.build(token_shape)
        self.predictive_head.build(token_shape)
        self.policy_head.build(token_shape)
        if self.joint_head is not None:
            self.joint_head.build(token_shape)
        self.built = True

    def get_build_config(self):
        return {"input_shape": None}

    def build_from_config(self, config):
        self.build()

    def dummy_inputs(self, batch_size=1, num_context=1, num_candidates=1, num_predictive=0):
        """A valid inputs dict of zeros (all context valid, all targets active) for building or tracing."""
        b, c, n, m = batch_size, num_context, num_candidates, num_predictive
        return {
            "context_x": tf.zeros([b, c, self.x_dim]),
            "context_y": tf.zeros([b, c, self.y_dim]),
            "context_mask": tf.ones([b, c], tf.bool),
            "query_x": tf.zeros([b, n, self.x_dim]),
            "target_x": tf.zeros([b, m, self.x_dim]),
            "target_mask": tf.ones([b, self.num_parameters + m], tf.bool),
        }

    def call(self, inputs, compute_policy=True, training=False):
        """One forward pass.

        inputs: dict of `context_x` [B, C, Dx], `context_y` [B, C, Dy], `context_mask` [B, C] bool
        (valid slots), `target_x` [B, M, Dx] (M may be 0; missing means M = 0), `target_mask`
        [B, L + M] bool (the active target, which only the queries attend to; missing means all
        active) and, when compute_policy, `query_x` [B, N, Dx] or `query_tokens` [B, N, d]
        (`embed_queries(query_x)`, e.g. computed once per rollout; used instead of query_x).
        Returns a dict: `mixture_logits`, `mixture_locs`, `mixture_scales` [B, L, K] for all L
        parameters, `predictive_logits` [B, M], with a joint head `joint_logits` [B, K], `joint_locs`,
        `joint_scales` [B, K, L] and `joint_factors` [B, K, L, R] (`joint_posterior`) and, when
        compute_policy, raw `policy_logits` [B, N].
        compute_policy=False skips the query tokens entirely (e.g. warm-up with random queries).
        """
        context_x, context_mask = inputs["context_x"], tf.cast(inputs["context_mask"], tf.bool)
        batch_size = tf.shape(context_x)[0]
        target_x = inputs.get("target_x")
        if target_x is None:
            target_x = tf.zeros([batch_size, 0, self.x_dim], context_x.dtype)
        query_x = query_tokens = None
        if compute_policy:
            query_x, query_tokens = inputs.get("query_x"), inputs.get("query_tokens")
            if query_x is None and query_tokens is None:
                raise ValueError("inputs['query_x'] (or 'query_tokens') is required when compute_policy=True")
        target_mask = inputs.get("target_mask")
        if target_mask is None:
            target_mask = tf.ones([batch_size, self.num_parameters + tf.shape(target_x)[1]], tf.bool)

        tokens = self.embedder(context_x, inputs["context_y"], context_mask, target_x, query_x, query_tokens)
        tokens = self.transformer(
            tokens["context"], tokens["targets"], context_mask, target_mask, tokens.get("queries")
        )
        targets = tokens["targets"]
        logits, locs, scales = self.inference_head(targets[:, : self.num_parameters])
        outputs = {
            "mixture_logits": logits,
            "mixture_locs": locs,
            "mixture_scales": scales,
            "predictive_logits": self.predictive_head(targets[:, self.num_parameters :]),
        }
        if self.joint == "mixture_tril":
            outputs.update(zip(JOINT_KEYS, self.joint_head(targets[:, : self.num_parameters])))
        elif self.joint == "copula":
            outputs["copula_factors"] = self.joint_head(targets[:, : self.num_parameters])
        if compute_policy:
            outputs["policy_logits"] = self.policy_head(tokens["queries"])
        return outputs

    def embed_queries(self, query_x):
        """query_x [B, N, Dx] -> query tokens [B, N, d], to pass as `inputs["query_tokens"]`."""
        return self.embedder.embed_queries(query_x)

    @staticmethod
    def posterior(outputs):
        """Mean-field posterior marginals q(theta_l | D): a Gaussian mixture with batch shape [B, L]."""
        return tfd.MixtureSameFamily(
            tfd.Categorical(logits=outputs["mixture_logits"]),
            tfd.Normal(outputs["mixture_locs"], outputs["mixture_scales"]),
        )

    @staticmethod
    def joint_posterior(outputs, indices=None):
        """Joint posterior q(theta_S | D) over the parameter indices S (None: all), batch [B], event [|S|]:
        a mixture of full-covariance Gaussians (`joint='mixture_tril'`) or a Gaussian copula over the
        marginals (`joint='copula'`); needs a model built with one of them."""
        if not joint_keys(outputs):
            raise ValueError(
                "these outputs have no joint posterior: build the model with joint='mixture_tril' or "
                "joint='copula' (network.joint)"
            )
        return joint_posterior(outputs, indices)

    @staticmethod
    def predictive(outputs):
        """Posterior predictive q(y*_m | x*_m, D) of binary outcomes: Bernoulli with batch shape [B, M]."""
        return tfd.Bernoulli(logits=outputs["predictive_logits"], dtype=tf.float32)

    @staticmethod
    def masked_policy_logits(outputs, taken_mask):
        """Policy logits [B, N] with taken candidates (taken_mask [B, N] bool) set to TAKEN_LOGIT."""
        logits = outputs["policy_logits"]
        return tf.where(tf.cast(taken_mask, tf.bool), tf.constant(TAKEN_LOGIT, logits.dtype), logits)

    @classmethod
    def policy(cls, outputs, taken_mask):
        """The acquisition policy pi(n | D): Categorical over N candidates, batch shape [B].

        Taken candidates (taken_mask [B, N] bool) have probability exactly 0.
        """
        return tfd.Categorical(logits=cls.masked_policy_logits(outputs, taken_mask))

    @classmethod
    def select(cls, outputs, taken_mask, greedy, seed=None):
        """Next candidate per episode, int32 [B], never a taken one (unless all N are taken).

        greedy=True takes the argmax of the policy; greedy=False samples from it with the
        stateless `seed` (shape [2] int), so the choice is reproducible under tf.function/XLA.
        """
        logits = tf.cast(outputs["policy_logits"], tf.float32)
        if greedy:
            return choose(logits, taken_mask, None, "greedy")
        if seed is None:
            raise ValueError("select(greedy=False) needs a stateless seed")
        shape = tf.shape(logits)
        return choose(logits, taken_mask, choice_noise(seed, 1, shape[0], shape[1])[0], "sample")

    def get_config(self):
        return {
            **super().get_config(),
            "num_parameters": self.num_parameters,
            "x_dim": self.x_dim,
            "y_dim": self.y_dim,
            "embed_dim": self.embed_dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "num_components": self.num_components,
            "min_scale": self.min_scale,
            "joint": self.joint,
            "joint_rank": self.joint_rank,
            "joint_reward": self.joint_reward,
            "query_layers": self.query_layers,
        }
