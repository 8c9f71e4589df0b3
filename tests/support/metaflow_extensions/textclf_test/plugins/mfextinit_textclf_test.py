"""Test-only Metaflow plugins: registered when tests/support is on PYTHONPATH, never in production."""
GCP_CLIENT_PROVIDERS_DESC = [("gcs-emulator", ".gcs_emulator_provider.EmulatorClientProvider")]
