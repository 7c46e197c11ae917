"""The tamper-evident audit trail: a hash chain of events covering every op and action."""

from server.audit.events import Action, AppendedEvent, AuditError, record_event, record_push

__all__ = ["Action", "AppendedEvent", "AuditError", "record_event", "record_push"]
