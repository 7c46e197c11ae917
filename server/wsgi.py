"""The WSGI entry point for gunicorn: `gunicorn server.wsgi:app`."""

from server import create_app
from server.heap import settle

app = create_app()
settle()  # everything built so far lives as long as the process (server/heap.py)
