"""The tuning stage: an Optuna study whose trials are TrainFlow-style trainings.

Owns the search space, the study (ask -> train -> tell, resumable through its RDB storage),
k-fold cross-validation of the winner, the study's MLflow runs and its report. It imports
`training` (each trial trains), `registry` (the MLflow experiment) and the ground floor;
never `monitoring` or `serve`.
"""
