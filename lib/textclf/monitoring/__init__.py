"""The monitoring stage: is the champion still fit for purpose, and what to retrain it on.

Owns drift statistics against the reference profile saved beside every model
(`evaluation.profile`), the assessment and its
card, retraining plans (new data versions from accepted feedback), and the append-only feedback
store and prediction log the server writes. It imports `registry` (which model is the champion
and which run made it), `evaluation`, `data`, `model` and the ground floor; never `tuning` or
`serve`.
"""
