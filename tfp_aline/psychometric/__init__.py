"""The psychometric-function model: task, and the grid posterior behind QUEST+ and Psi-marginal."""
