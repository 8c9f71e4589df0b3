"""The evaluation stage: what "good" means, and the reports that show it.

Owns the metrics (the quick ones training selects by, and the full test report computed through
`evaluate` with the metric modules shipped in `metric_modules/`), temperature scaling
(`calibration`, which training fits on validation), scoring a model on a split (once per run,
stored beside the model and read back), the drift reference profile drawn from those scores
(`profile`), ONNX parity, how far token attributions agree with the
model (`faithfulness`), error analysis, the figures, and the Papermill runner of `notebooks/`. It
sits below training because training selects models by these metrics and calibrates them; it
imports `data`, `model` and the ground floor, and resolves no runs or registry names itself
(`textclf.registry` does).
"""
