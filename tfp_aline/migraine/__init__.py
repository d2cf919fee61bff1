"""The migraine-trigger model: task, feature table, diaries, advice, mock distribution, Gaussian EIG."""
