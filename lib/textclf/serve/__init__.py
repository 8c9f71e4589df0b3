"""The serve stage: one FastAPI app with the JSON API and the Gradio demo mounted beside it.

Owns the app, the model holder that follows the registry alias without downtime, micro-batching,
the shared service behind API and demo, the schemas and the demo, and the same predictions for
whole files (`batch_scoring`: `textclf predict`, PredictFlow). It may import every stage below it
(the registry resolves the model, monitoring stores feedback); nothing imports it but the
`textclf` command and the flows.
"""
