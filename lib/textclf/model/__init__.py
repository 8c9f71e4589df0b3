"""The model stage: what a classifier is and how it runs.

Owns backbone resolution (`backbones`), the network (`modeling_textclf`, self-contained: it is
copied into every saved folder) and its Auto-class registration (`network`), how a folder is
saved (`folder`), dynamic padding, the `Predictor` every other stage scores with (PyTorch or ONNX,
`onnx_runtime`), the ONNX exporter and token attributions. It imports only the ground floor
(config, errors, storage): it knows nothing of data files, training, runs or registries.
"""
