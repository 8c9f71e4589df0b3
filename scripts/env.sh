# Sourced by the scripts: offline and telemetry-free defaults, a Metaflow user when $USER is unset.
export METAFLOW_USER=${METAFLOW_USER:-${USER:-textclf}}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
export HF_HUB_DISABLE_TELEMETRY=1 MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 DVC_NO_ANALYTICS=1 GRADIO_ANALYTICS_ENABLED=False
export TOKENIZERS_PARALLELISM=false
