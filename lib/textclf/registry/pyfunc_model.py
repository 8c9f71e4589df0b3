"""The registered model's MLflow pyfunc, in the models-from-code form: MLflow copies this file
into the model and runs it to load, so it must not import textclf. Serving needs torch and
transformers only; the network's code comes with the Hugging Face folder (`trust_remote_code`).

`predict` takes a DataFrame with a `text` column (or `{"text": [...]}`; the bare model also a
list of texts, which MLflow's schema check refuses) and returns a DataFrame:
`label` (a string; for a multi-label model, the list of labels at or over the threshold) and one
probability column per class, named by the class. Texts are truncated where `Predictor` cuts
them (the folder's tokenizer carries that limit), so both give the same numbers. Probabilities are
calibrated by the network itself: its forward pass divides the logits by the folder's
`calibration_temperature` (temperature scaling, fitted on validation), so nothing here repeats it.
"""
from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

FOLDER = "hf_model"  # the artifact that holds the Hugging Face folder
BATCH = 64


class TextclfPyfunc(PythonModel):
    def load_context(self, context) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = context.artifacts[FOLDER]
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)  # the config names code
        self.model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True).eval()
        config = self.model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.multi_label = config.problem_type == "multi_label_classification"
        self.threshold = float(getattr(config, "threshold", None) or 0.5)

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        column = model_input["text"] if isinstance(model_input, (pd.DataFrame, dict)) else model_input
        # {"text": [...]} reaches here as one row holding the list
        texts = [str(t) for cell in column for t in (cell if isinstance(cell, (list, np.ndarray)) else [cell])]
        probs = np.concatenate([self._probs(texts[i:i + BATCH]) for i in range(0, len(texts), BATCH)]) \
            if texts else np.zeros((0, len(self.labels)), np.float32)
        if self.multi_label:
            decided = [[self.labels[j] for j in np.flatnonzero(p >= self.threshold)] for p in probs]
        else:
            decided = [self.labels[j] for j in probs.argmax(1)]
        return pd.DataFrame({"label": decided, **{name: probs[:, j].astype(float) for j, name in enumerate(self.labels)}})

    def _probs(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenizer(texts, truncation=True, padding=True, return_tensors="pt")
        with self.torch.inference_mode():
            logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        return (logits.sigmoid() if self.multi_label else logits.softmax(-1)).numpy()


mlflow.models.set_model(TextclfPyfunc())
