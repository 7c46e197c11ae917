"""Every server-side table; importing this package registers them all on `Base.metadata`."""

from server.models.access import SignInThrottle
from server.models.attachments import Attachment, AttachmentReference, AttachmentUploader
from server.models.audit import AuditChainHead, AuditEvent, AuditEventGrid
from server.models.base import Base, as_utc, utcnow
from server.models.forms import StoredForm, StoredFormVersion, VersionStatus
from server.models.people import Device, Grid, GridLevel, Role, User, UserGrid
from server.models.review import Comment, FlagCheck, Review, ReviewDecision

__all__ = [
    "Attachment",
    "AttachmentReference",
    "AttachmentUploader",
    "AuditChainHead",
    "AuditEvent",
    "AuditEventGrid",
    "Base",
    "Comment",
    "Device",
    "FlagCheck",
    "Grid",
    "GridLevel",
    "Review",
    "ReviewDecision",
    "Role",
    "SignInThrottle",
    "StoredForm",
    "StoredFormVersion",
    "User",
    "UserGrid",
    "VersionStatus",
    "as_utc",
    "utcnow",
]
