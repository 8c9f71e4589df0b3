"""An anonymous google-cloud-storage client for Metaflow's gs datastore against the emulator.

Metaflow's default provider passes `google.auth.default()` credentials, which a test machine
does not have and the emulator does not need.
"""
import os
import threading

_clients = {}


class EmulatorClientProvider:
    name = "gcs-emulator"

    @staticmethod
    def get_gs_storage_client(*args, **kwargs):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        key = (os.getpid(), threading.get_ident())
        if key not in _clients:
            _clients[key] = storage.Client(credentials=AnonymousCredentials(),
                                           project=os.environ.get("GOOGLE_CLOUD_PROJECT", "textclf-test"))
        return _clients[key]

    @staticmethod
    def get_credentials(scopes, *args, **kwargs):
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials(), os.environ.get("GOOGLE_CLOUD_PROJECT", "textclf-test")
