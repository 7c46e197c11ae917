"""The WSGI entry point for gunicorn: `gunicorn server.wsgi:app`."""

import gc

from server import create_app

app = create_app()
# Everything built so far lives as long as the process: keep it out of the collector's
# scans, which otherwise cost about a fifth of ingest time on large pushes.
gc.freeze()
