"""The Gradio demo: one text with its probabilities and why; a CSV in, predictions out; the model
being served; and a way to say "this is wrong". Everything goes through the same Service as the
JSON API, so the demo and the API always answer with the same model."""
from __future__ import annotations

import tempfile
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


def highlighted(predictor, text: str, scores: list[float]) -> list[tuple[str, float | None]]:
    """Per-token scores summed into words and laid over the original text (spaces and case kept),
    scaled to [-1, 1] for HighlightedText; text past the model's max length stays plain."""
    enc = predictor.tokenizer(text, truncation=True, max_length=predictor.max_length, return_offsets_mapping=True)
    words: dict[int, list[float]] = {}
    for word, (start, end), score in zip(enc.word_ids(), enc["offset_mapping"], scores):
        if word is None or start == end:
            continue
        span = words.setdefault(word, [start, end, 0.0])
        span[0], span[1], span[2] = min(span[0], start), max(span[1], end), span[2] + score
    top = max((abs(s) for _, _, s in words.values()), default=0.0) or 1.0
    pieces: list[tuple[str, float | None]] = []
    cursor = 0
    for start, end, score in sorted(words.values()):
        if start > cursor:
            pieces.append((text[cursor:start], None))
        pieces.append((text[start:end], round(score / top, 3)))
        cursor = end
    if cursor < len(text):
        pieces.append((text[cursor:], None))
    return pieces


def model_markdown(info: ModelInfo) -> str:
    metrics = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in info.metrics.items())
    lines = [f"**{info.name or info.uri}** version **{info.version or '-'}**"
             + (f" (alias `{info.alias}`)" if info.alias else ""),
             f"- serving: `{info.uri}`, loaded {info.loaded_at:%Y-%m-%d %H:%M:%S} UTC",
             f"- labels: {', '.join(info.labels)}" + (" (multi-label)" if info.multi_label else ""),
             f"- test metrics: {metrics or 'not recorded'}",
             f"- trained by: `{info.run_id or 'unknown'}`"]
    return "\n".join(lines)


def classify_frame(service: Service, frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """`frame` plus predicted, model_version and one prob_<label> column per label. Empty texts get
    empty predictions; texts over the character limit are clipped (the model truncates anyway)."""
    if column not in frame.columns:
        raise BadInput(["column"], f"the CSV has no column {column!r}; its columns are {list(frame.columns)}")
    if frame.empty:
        raise BadInput(["file"], "the CSV has no rows")
    if len(frame) > service.cfg.max_csv_rows:
        raise BadInput(["file"], f"{len(frame)} rows; at most {service.cfg.max_csv_rows} per file")
    texts = frame[column].fillna("").astype(str).str.slice(0, service.cfg.max_chars)
    todo = [i for i, t in enumerate(texts) if t.strip()]
    out = frame.copy()
    out["predicted"], out["model_version"] = "", ""
    for start in range(0, len(todo), service.cfg.max_texts):
        rows = todo[start:start + service.cfg.max_texts]
        answer = service.predict_sync([texts.iloc[i] for i in rows])
        for i, p in zip(rows, answer.predictions):
            out.iat[i, out.columns.get_loc("predicted")] = p.label if isinstance(p.label, str) else "|".join(p.label)
            out.iat[i, out.columns.get_loc("model_version")] = answer.model.version or ""
            for label, prob in p.probabilities.items():
                out.loc[out.index[i], f"prob_{label}"] = round(prob, 6)
    return out


def build_ui(service: Service) -> gr.Blocks:
    info = service.holder.current.info

    def classify(text: str) -> tuple[Any, ...]:
        try:
            answer = service.predict_sync(text)
            why = service.explain(text)
        except BadInput as exc:
            raise gr.Error(exc.msg[:1].upper() + exc.msg[1:]) from None
        pred = answer.predictions[0]
        label = pred.label if isinstance(pred.label, str) else ", ".join(pred.label) or "(no label over threshold)"
        note = f"**{label}** · model version {answer.model.version or '-'} · prediction `{pred.prediction_id}`"
        return (pred.probabilities, highlighted(service.holder.current.predictor, text, why["scores"]), note,
                pred.prediction_id)

    def send_feedback(text: str, labels: str | list[str] | None, prediction_id: str | None) -> str:
        try:
            saved = service.feedback(text or "", labels or [], prediction_id or None)
        except BadInput as exc:
            raise gr.Error(exc.msg[:1].upper() + exc.msg[1:]) from None
        shown = labels if isinstance(labels, str) else ", ".join(labels or [])
        return f"Thank you: saved **{shown}** (model version {saved.model_version or '-'}, {saved.timestamp:%H:%M:%S} UTC)."

    def classify_csv(path: str | None, column: str) -> tuple[str, pd.DataFrame, str]:
        if not path:
            raise gr.Error("Upload a CSV file first.")
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            out = classify_frame(service, frame, (column or "text").strip())
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise gr.Error(f"Could not read the CSV: {exc}") from None
        except BadInput as exc:
            raise gr.Error(exc.msg[:1].upper() + exc.msg[1:]) from None
        OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
        dest = Path(tempfile.mkdtemp(dir=OUTPUT_DIR)) / f"{Path(path).stem}-predictions.csv"
        out.to_csv(dest, index=False)
        return str(dest), out.head(20), f"{len(out)} rows classified."

    def refresh() -> tuple[str, dict, Any]:
        current = service.holder.current.info
        return (model_markdown(current), {"metrics": current.metrics, "lineage": current.lineage},
                gr.Dropdown(choices=current.labels))

    with gr.Blocks(title="textclf", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# textclf\nClassify text with the model the registry serves, see why, and correct it.")
        with gr.Tab("Single text"):
            text = gr.Textbox(label="Text", lines=3, placeholder="Type or paste a text", elem_id="text-input")
            go = gr.Button("Classify", variant="primary", elem_id="classify")
            gr.Examples(examples=EXAMPLES, inputs=text)
            verdict = gr.Markdown(elem_id="verdict")
            probs = gr.Label(label="Probabilities", num_top_classes=10, elem_id="probabilities")
            why = gr.HighlightedText(label="Why: words pushing towards (red) or away from (blue) the predicted label",
                                     elem_id="attribution")
            prediction_id = gr.State(None)
            with gr.Accordion("This is wrong", open=False):
                right = gr.Dropdown(choices=info.labels, multiselect=info.multi_label, label="The right label",
                                    elem_id="right-label")
                send = gr.Button("Save the right label", elem_id="send-feedback")
                thanks = gr.Markdown(elem_id="feedback-status")
            gr.on([go.click, text.submit], classify, inputs=text, outputs=[probs, why, verdict, prediction_id],
                  api_name="classify")
            send.click(send_feedback, inputs=[text, right, prediction_id], outputs=thanks, api_name="feedback")
        with gr.Tab("Batch (CSV)"):
            upload = gr.File(label="CSV with a text column", file_types=[".csv"], type="filepath", elem_id="csv-upload")
            column = gr.Textbox(value="text", label="Text column")
            run_batch = gr.Button("Classify CSV", variant="primary", elem_id="classify-csv")
            batch_status = gr.Markdown(elem_id="batch-status")
            download = gr.File(label="Predictions CSV", interactive=False, elem_id="csv-download")
            preview = gr.Dataframe(label="First rows", interactive=False, elem_id="csv-preview")
            run_batch.click(classify_csv, inputs=[upload, column], outputs=[download, preview, batch_status],
                            api_name="classify_csv")
        with gr.Tab("Model"):
            card = gr.Markdown(model_markdown(info), elem_id="model-card")
            details = gr.JSON(label="Metrics and lineage")
            reload = gr.Button("Refresh")
            reload.click(refresh, outputs=[card, details, right], api_name=False)
        demo.load(refresh, outputs=[card, details, right], api_name=False)
    return demo
