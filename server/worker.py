"""The Celery worker entry point: `celery -A server.worker worker`."""

from server import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]
