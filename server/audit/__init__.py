"""The tamper-evident audit trail: a hash chain of events covering every op and action."""

from server.audit.events import Action, AppendedEvent, AuditError, record_event, record_push
from server.audit.tasks import anchor_chain

__all__ = ["Action", "AppendedEvent", "AuditError", "anchor_chain", "record_event", "record_push"]
