"""Celery, built inside the app factory; tasks are sent only after their transaction commits.

Without a broker setting, tasks run in-process (eager), so the embedded default
needs no services. Every task must be safe to run twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Celery, Task
from flask import Flask, current_app
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from server.settings import Settings

log = logging.getLogger("fieldsync.tasks")

EXTENSION_KEY = "celery"
_PENDING = "fieldsync.pending_tasks"


def celery_init_app(app: Flask, settings: Settings) -> Celery:
    """A Celery app whose tasks run inside the Flask app context."""

    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.import_name, task_cls=FlaskTask)
    celery_app.conf.update(
        broker_url=settings.broker_url or "memory://",
        task_always_eager=not settings.broker_url,
        task_eager_propagates=True,
        task_ignore_result=True,
        task_acks_late=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    celery_app.set_default()
    app.extensions[EXTENSION_KEY] = celery_app
    return celery_app


def app_task(name: str) -> Task:
    """The task `name` of the current app's Celery (not whichever app was built last)."""
    return current_app.extensions[EXTENSION_KEY].tasks[name]


def send_after_commit(session: Session, task: Task, *args: Any, **kwargs: Any) -> None:
    """Queue `task` to be sent when `session` commits.

    It is dropped when the transaction it was queued in rolls back or is closed
    without a commit, or the savepoint (`begin_nested`) it was queued in rolls back:
    a savepoint rolled back inside a transaction that then commits keeps what was
    queued before it. Releasing a savepoint sends nothing; the outer transaction may
    still roll back.
    """
    pending: list[tuple[SessionTransaction | None, Callable[[], Any]]]
    pending = session.info.setdefault(_PENDING, [])
    queued_in = session.get_nested_transaction() or session.get_transaction()
    pending.append((queued_in, lambda: task.delay(*args, **kwargs)))
    if not event.contains(session, "after_commit", _send_pending):
        event.listen(session, "after_commit", _send_pending)
        event.listen(session, "after_soft_rollback", _drop_pending)
        event.listen(session, "after_transaction_end", _end_pending)


def _send_pending(session: Session) -> None:
    # SQLAlchemy reports a released savepoint as a commit too: only the outermost counts.
    if session.get_nested_transaction() is not None:
        return
    for _queued_in, send in session.info.pop(_PENDING, []):
        # The transaction is committed: a task that cannot be sent (the broker is down)
        # or that fails in-process must not turn the request into an error, nor keep
        # the tasks after it from being sent. Work that must not be lost is also
        # recorded in the transaction and picked up by the beat schedule.
        try:
            send()
        except Exception:
            log.exception("a task queued by a committed transaction failed to run or send")


def _end_pending(session: Session, transaction: SessionTransaction) -> None:
    # A committed outermost transaction has sent its tasks by now; any left over
    # belong to one that ended without a commit (closed, or rolled back).
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


def _drop_pending(session: Session, previous_transaction: SessionTransaction) -> None:
    pending = session.info.get(_PENDING, [])
    session.info[_PENDING] = [
        (queued_in, send)
        for queued_in, send in pending
        if not _inside(queued_in, previous_transaction)
    ]


def _inside(queued_in: SessionTransaction | None, ended: SessionTransaction) -> bool:
    """True when a task queued in `queued_in` belongs to the `ended` transaction."""
    while queued_in is not None:
        if queued_in is ended:
            return True
        queued_in = queued_in.parent
    # Queued before any transaction began, or in one that is over: the outermost's.
    return ended.parent is None
