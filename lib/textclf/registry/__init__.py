"""The registry stage: MLflow tracking, the champion gate, and finding any model by any name.

Owns tracking (`tracking`), the registry and its gate (`gate`, with its pinned `golden` set), what
a registered version is (`mlflow_model`: an MLflow pyfunc, `pyfunc_model`, around the folder, with
its `model_card`), the one model resolver (`resolution`: aliases, versions, TrainFlow runs,
folders), the notebooks' inputs (`inputs`), Metaflow run lookup (`runs`) and lineage. It imports
`training` (metric names), `evaluation` (the gate's metrics), `data`, `model` and the ground floor.
"""
