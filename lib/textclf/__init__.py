"""textclf: labelled text in, a served transformer classifier out, kept fresh.

The library is grouped by pipeline stage (see docs/architecture.md): `data`, `model`,
`evaluation`, `training`, `registry`, `monitoring`, `tuning`, `serve`, on a ground floor of
`config`, `errors`, `storage`, `environment` and `ports`. Importing it changes nothing in the
process environment; entry points call `textclf.environment.apply_defaults()` for the offline,
telemetry-free defaults.
"""

__version__ = "0.1.0"
