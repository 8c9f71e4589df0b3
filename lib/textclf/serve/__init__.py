"""Serving: one FastAPI app with JSON routes and the Gradio demo mounted beside them."""
import os

# Before anything here imports gradio: no analytics, and gradio_client (which ignores the
# variable above) makes no Hub calls.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
