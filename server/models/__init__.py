"""Every server-side table; importing this package registers them all on `Base.metadata`."""

from server.models.base import Base, utcnow
from server.models.people import Device, Grid, GridLevel, Role, User, UserGrid

__all__ = ["Base", "Device", "Grid", "GridLevel", "Role", "User", "UserGrid", "utcnow"]
