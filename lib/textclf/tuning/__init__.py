"""The tuning stage: an Optuna study whose trials are TrainFlow-style trainings, and the
selection protocol around it: candidates compared on validation only, over seeds, with the test
split sealed until the winner is chosen and then scored on it once per final seed.

Owns the search space (keys and named recipes), the study (ask -> train -> tell, resumable
through its RDB storage), training over seeds, the sealed manifest, k-fold cross-validation and
the final test of the winner, the study's MLflow runs and its report. It imports `training` (each
trial trains), `evaluation` (the winner's test score), `registry` (the MLflow experiment) and the
ground floor; never `monitoring` or `serve`.
"""
