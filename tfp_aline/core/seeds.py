"""The named random streams: each use of the run's seed gets its own salt, so no two draw the same numbers.

A stateless seed is the pair [seed, salt]. The values are the ones the package has always used,
so that results stay as they were; a new stream takes a value of its own, different from these.
"""

# Training
TRAINING_EPOCHS = 0x5EED  # the epoch batches (folded in with the epoch)
EXTRA_UPDATES = 0x57E0  # + stream: the extra inference-only updates of a policy epoch
VALIDATION_OFFSET = 0xFA1  # added to the run's seed for the validation people
VALIDATION_EPISODES = 0xFA11  # the validation people and their candidate pools
VALIDATION_CHOICES = 0xFA12  # their random queries
VALIDATION_REFERENCE = 0xFA13  # + step index: the exact reference at each validation step

# Evaluation (`tfp-aline evaluate`, and the comparison at the end of training)
EVALUATION_EPISODES = 0xE7A1  # the people every method runs on
METHOD_CHOICES = 1  # the choices of every method (the same for all, so only the method differs)
CONTRASTIVE = 0x5BCE  # the contrastive draws of the sPCE and sNMC bounds
NUTS_CHECK = 99  # the NUTS check of the exact reference
NUTS_CHECK_REFERENCE = 98  # the reference mean it is compared with
POSTERIOR_SAMPLES_STRIDE = 1000  # posterior draws at (target i, step t): salt i * stride + t

# Exact posteriors
NUTS_STARTS = 7919  # added to the second seed word: the prior draws that chains start from

# Migraine mock data
MOCK_PEOPLE = 0  # the simulated people of `generate-mock`


def posterior_samples(target_index: int, step: int) -> int:
    """The salt of the amortized-posterior draws of target `target_index` at step `step`."""
    return POSTERIOR_SAMPLES_STRIDE * target_index + step
