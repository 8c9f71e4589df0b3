"""The Gradio demo: one text with its probabilities and why, and a thumbs up or down on the answer;
a CSV in, predictions out; the model being served. Everything goes through the same Service as the
JSON API, so the demo and the API always answer with the same model."""
from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from textclf.serve.schemas import BadInput, ModelInfo
from textclf.serve.service import Service

EXAMPLES = [
    "The film was wonderful, I loved every minute of it.",
    "The service was slow and the food arrived cold.",
    "Honestly a brilliant little phone, battery lasts for days.",
]
OUTPUT_DIR = Path(tempfile.gettempdir()) / "textclf-serve"  # inside Gradio's allowed temp dir


def highlighted(text: str, explanation: dict[str, Any]) -> list[tuple[str, float | None]]:
    """An explanation's word scores laid over the original text (spaces and case kept), scaled to
    [-1, 1] for HighlightedText; text past the model's max length stays plain. Built from the
    explanation's own word spans: no second tokenization, and no mismatch if the model swaps."""
    word_scores = [score for _, score in explanation["words"]]
    top = max((abs(s) for s in word_scores), default=0.0) or 1.0
    pieces: list[tuple[str, float | None]] = []
    cursor = 0
    for (start, end), score in zip(explanation["spans"], word_scores):
        if start > cursor:
            pieces.append((text[cursor:start], None))
        pieces.append((text[start:end], round(float(score) / top, 3)))
        cursor = end
    if cursor < len(text):
        pieces.append((text[cursor:], None))
    return pieces


def model_markdown(info: ModelInfo) -> str:
    head = f"**{info.name or info.uri}** version **{info.version or '-'}**" + (f" (alias `{info.alias}`)" if info.alias else "")
    labels = ", ".join(info.labels) + (" (multi-label)" if info.multi_label else "")
    return (f"{head} · labels: {labels}  \nserving `{info.uri}`, loaded {info.loaded_at:%Y-%m-%d %H:%M:%S} UTC"
            f" · trained by `{info.run_id or 'unknown'}`")


SHOWN_METRICS = ("n", "accuracy", "macro_f1", "micro_f1", "subset_accuracy", "ece", "roc_auc")  # the rest: GET /model


def model_table(info: ModelInfo) -> pd.DataFrame:
    """The headline test metrics with their 95 % intervals where the run recorded them, then the lineage."""
    rows = []
    for key in SHOWN_METRICS:
        value = info.metrics.get(key)
        if not isinstance(value, (int, float)):
            continue
        low, high = info.metrics.get(f"{key}_ci_low"), info.metrics.get(f"{key}_ci_high")
        interval = f"{low:.3f} – {high:.3f}" if low is not None and high is not None else ""
        rows.append(("test rows" if key == "n" else f"test {key}", f"{value:.3f}" if isinstance(value, float) else str(value),
                     interval))
    rows += [(key, str(value), "") for key, value in info.lineage.items() if value is not None]
    return pd.DataFrame(rows, columns=["", "value", "95 % interval"])


def classify_frame(service: Service, frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """`frame` plus predicted, model_version and one prob_<label> column per label. Empty texts get
    empty predictions; texts over the character limit are clipped (the model truncates anyway) and
    NUL characters dropped. Output columns are replaced whole, so the tab's own output (read back
    as strings) can be classified again."""
    if column not in frame.columns:
        raise BadInput(["column"], f"the CSV has no column {column!r}; its columns are {list(frame.columns)}")
    if frame.empty:
        raise BadInput(["file"], "the CSV has no rows")
    if len(frame) > service.cfg.max_csv_rows:
        raise BadInput(["file"], f"{len(frame)} rows; at most {service.cfg.max_csv_rows} per file")
    texts = frame[column].fillna("").astype(str).str.replace("\x00", "", regex=False).str.slice(0, service.cfg.max_chars)
    todo = [i for i, t in enumerate(texts) if t.strip()]
    predicted, versions = [""] * len(frame), [""] * len(frame)
    probs: dict[str, list[float | None]] = {}
    for start in range(0, len(todo), service.cfg.max_texts):
        rows = todo[start:start + service.cfg.max_texts]
        answer = service.predict_sync([texts.iloc[i] for i in rows])
        for i, p in zip(rows, answer.predictions):
            predicted[i] = p.label if isinstance(p.label, str) else "|".join(p.label)
            versions[i] = answer.model.version or ""
            for label, prob in p.probabilities.items():
                probs.setdefault(f"prob_{label}", [None] * len(frame))[i] = round(prob, 6)
    out = frame.copy()
    out["predicted"], out["model_version"] = predicted, versions
    for name, values in probs.items():
        out[name] = pd.Series(values, index=out.index, dtype=float)  # NaN (an empty cell) for empty texts
    return out


def _prune(folder: Path, max_age_s: float = 3600) -> None:
    """Remove batch outputs older than `max_age_s` (Gradio has copied them to its own cache,
    which `delete_cache` empties), so they do not pile up in the temp dir."""
    cutoff = time.time() - max_age_s
    for path in folder.glob("*/*.csv"):
        with contextlib.suppress(OSError):  # another server may prune the same folder
            if path.stat().st_mtime < cutoff:
                path.unlink()
                path.parent.rmdir()


def build_ui(service: Service) -> gr.Blocks:
    info = service.holder.current.info

    def fail(exc: BadInput) -> gr.Error:
        return gr.Error(exc.msg[:1].upper() + exc.msg[1:])

    def classify(text: str) -> tuple[Any, ...]:
        try:
            answer = service.predict_sync(text)
            why = service.explain(text)
        except BadInput as exc:
            raise fail(exc) from None
        pred = answer.predictions[0]
        labels = [pred.label] if isinstance(pred.label, str) else pred.label
        shown = ", ".join(labels) or "(no label over the threshold)"
        ask = ("**Quality check**: this prediction was drawn at random for review. Is it right?"
               if pred.review_requested else "Is this right?")
        details = f"model version {answer.model.version or '-'} · prediction id `{pred.prediction_id}`"
        return (gr.Column(visible=True), f"## {shown}", pred.probabilities,
                highlighted(text, why), ask, details,
                {"id": pred.prediction_id, "text": text, "labels": labels}, gr.Row(visible=False), "",
                gr.Dropdown(value=None))

    def save(prediction: dict | None, labels: str | list[str] | None) -> str:
        if not prediction:
            raise gr.Error("Classify a text first.")
        try:
            saved = service.feedback(prediction["text"], labels or [], prediction["id"])
        except BadInput as exc:
            raise fail(exc) from None
        shown = labels if isinstance(labels, str) else ", ".join(labels or [])
        return f"Thank you: saved **{shown}** as a {saved.kind} ({saved.timestamp:%H:%M:%S} UTC)."

    def confirm(prediction: dict | None) -> tuple[Any, str]:
        return gr.Row(visible=False), save(prediction, (prediction or {}).get("labels") or [])

    def classify_csv(path: str | None, column: str) -> tuple[Any, str, pd.DataFrame, str]:
        if not path:
            raise gr.Error("Upload a CSV file first.")
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            out = classify_frame(service, frame, (column or "text").strip())
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise gr.Error(f"Could not read the CSV: {exc}") from None
        except BadInput as exc:
            raise fail(exc) from None
        OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
        _prune(OUTPUT_DIR)
        dest = Path(tempfile.mkdtemp(dir=OUTPUT_DIR)) / f"{Path(path).stem}-predictions.csv"
        out.to_csv(dest, index=False)
        return gr.Column(visible=True), str(dest), out.head(20), f"{len(out)} rows classified."

    def refresh() -> tuple[str, pd.DataFrame, Any]:
        current = service.holder.current.info
        return model_markdown(current), model_table(current), gr.Dropdown(choices=current.labels)

    with gr.Blocks(title="textclf", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# textclf\nClassify text with the model the registry serves, see why, and say whether it is right.")
        with gr.Tab("Single text"):
            text = gr.Textbox(label="Text", lines=3, placeholder="Type or paste a text", elem_id="text-input")
            go = gr.Button("Classify", variant="primary", elem_id="classify")
            gr.Examples(examples=EXAMPLES, inputs=text)
            prediction = gr.State(None)  # the shown prediction: its id, the text it is about, its labels
            with gr.Column(visible=False) as result:  # nothing to show before the first answer
                verdict = gr.Markdown(elem_id="verdict")
                probs = gr.Label(label="Probabilities", num_top_classes=10, show_heading=False, elem_id="probabilities")
                why = gr.HighlightedText(label="Why: words pushing towards (red) or away from (purple) the predicted label",
                                         show_legend=True, elem_id="attribution")  # Gradio's score colours
                ask = gr.Markdown(elem_id="review-question")
                with gr.Row():
                    up = gr.Button("Yes, it is right", elem_id="thumbs-up", size="sm")
                    down = gr.Button("No, it is wrong", elem_id="thumbs-down", size="sm")
                with gr.Row(visible=False) as correct:
                    right = gr.Dropdown(choices=info.labels, value=None, multiselect=info.multi_label,
                                        label="The right label", elem_id="right-label")
                    send = gr.Button("Save the right label", elem_id="send-feedback")
                thanks = gr.Markdown(elem_id="feedback-status")
                with gr.Accordion("Details", open=False):
                    details = gr.Markdown(elem_id="prediction-details")
            gr.on([go.click, text.submit], classify, inputs=text, api_name="classify",
                  outputs=[result, verdict, probs, why, ask, details, prediction, correct, thanks, right])
            text.change(lambda: (gr.Column(visible=False), None), outputs=[result, prediction], api_name=False)
            up.click(confirm, inputs=prediction, outputs=[correct, thanks], api_name="confirm")
            down.click(lambda: gr.Row(visible=True), outputs=correct, api_name=False)
            send.click(save, inputs=[prediction, right], outputs=thanks, api_name="feedback")
        with gr.Tab("Batch (CSV)"):
            upload = gr.File(label="CSV with a text column", file_types=[".csv"], type="filepath", elem_id="csv-upload")
            column = gr.Textbox(value="text", label="Text column")
            run_batch = gr.Button("Classify CSV", variant="primary", elem_id="classify-csv")
            batch_status = gr.Markdown(elem_id="batch-status")
            with gr.Column(visible=False) as batch_result:  # nothing to show before the first file
                download = gr.File(label="Predictions CSV", interactive=False, elem_id="csv-download")
                preview = gr.Dataframe(label="First rows", interactive=False, elem_id="csv-preview")
            run_batch.click(classify_csv, inputs=[upload, column], api_name="classify_csv",
                            outputs=[batch_result, download, preview, batch_status])
        with gr.Tab("Model"):
            card = gr.Markdown(model_markdown(info), elem_id="model-card")
            table = gr.Dataframe(model_table(info), label="Test metrics and lineage", interactive=False,
                                 elem_id="model-table", wrap=True)
            reload = gr.Button("Refresh", size="sm")
            reload.click(refresh, outputs=[card, table, right], api_name=False)
        demo.load(refresh, outputs=[card, table, right], api_name=False)
    return demo
