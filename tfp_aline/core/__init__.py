"""The method itself, independent of any network or model: episodes, targets, the rollout state and
loop, the choice rule, the objectives, exact posteriors and the acquisition interface."""
