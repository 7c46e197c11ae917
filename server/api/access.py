"""Who may call what: one table of rules, enforced before every request.

Each endpoint has a rule: how the caller authenticates, which roles may call it,
and, when it acts on one object, what kind of object that is (see `objects.py`)
so its grid can be checked against the caller's scope. An object outside the
scope answers 404, exactly like a missing one. An endpoint without a rule is
refused (fail closed), and the authorization matrix test fails on it.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from flask import Blueprint, g, redirect, request, url_for

from server.api.objects import LOCATORS, Located
from server.auth import authenticate_device, authenticate_user, session_user
from server.db import db_session
from server.errors import ApiError, ErrorCode
from server.models import Role, User
from server.scope import Scope, scope_of

log = logging.getLogger("fieldsync.access")

bp = Blueprint("access", __name__)


class Auth(enum.StrEnum):
    PUBLIC = "public"  # anyone
    DEVICE = "device"  # a live device bearer token
    USER = "user"  # a device token, or a web session (CSRF on changes)
    PAGE = "page"  # a web page: a web session, else a redirect to sign-in


ALL = frozenset(Role)
STAFF = frozenset({Role.ADMIN, Role.SUPERVISOR})
LEADERS = frozenset({Role.ADMIN, Role.SUPERVISOR, Role.GRID_LEADER})
ADMIN = frozenset({Role.ADMIN})
FIELD = frozenset({Role.GRID_LEADER, Role.WORKER})


@dataclass(frozen=True)
class Rule:
    """Access to one endpoint."""

    auth: Auth
    roles: frozenset[Role] = frozenset()
    obj: str | None = None  # the object kind named by the URL, if any
    own_only: frozenset[Role] = frozenset()  # roles that reach only objects they own

    def __post_init__(self) -> None:
        if self.obj is not None and self.obj not in LOCATORS:
            raise ValueError(f"no locator for object kind {self.obj!r}")


PUBLIC = Rule(Auth.PUBLIC)


def user(roles: frozenset[Role], obj: str | None = None, own_only=frozenset()) -> Rule:
    return Rule(Auth.USER, roles, obj, frozenset(own_only))


def device(roles: frozenset[Role] = ALL, obj: str | None = None) -> Rule:
    return Rule(Auth.DEVICE, roles, obj)


def page(roles: frozenset[Role] = ALL) -> Rule:
    return Rule(Auth.PAGE, roles)


RULES: dict[str, Rule] = {
    # health and documentation
    "health.healthz": PUBLIC,
    "health.readyz": PUBLIC,
    "health.metrics_view": PUBLIC,
    "openapi.spec": PUBLIC,
    "openapi.docs": PUBLIC,
    "static": PUBLIC,
    # devices
    "devices.register": PUBLIC,
    "devices.list_devices": user(ALL),
    "devices.get_device": user(ALL, "device", own_only=FIELD),
    "devices.revoke_device": user(ALL, "device", own_only=FIELD),
    # people
    "users.me": user(ALL),
    "users.list_users": user(STAFF),
    "users.create_user": user(ADMIN),
    "users.get_user": user(STAFF, "user"),
    "users.update_user": user(ADMIN, "user"),
    "users.set_user_grids": user(STAFF, "user"),
    "users.reset_password": user(ADMIN, "user"),
    # grids
    "grids.list_grids": user(ALL),
    "grids.create_grid": user(ADMIN),
    "grids.import_grids": user(ADMIN),
    "grids.get_grid": user(ALL, "grid"),
    "grids.update_grid": user(ADMIN, "grid"),
    "grids.retire_grid": user(ADMIN, "grid"),
    # attachments
    "attachments.announce": user(ALL),
    "attachments.upload_content": user(ALL, "attachment"),
    "attachments.complete_upload": user(ALL, "attachment"),
    "attachments.get_attachment": user(ALL, "attachment"),
    "attachments.download": user(ALL, "attachment"),
    # forms
    "forms.list_forms": user(ALL),
    "forms.bundle": device(),
    "forms.get_version": user(ALL),
    "forms.diff_versions": user(ALL),
    "forms.export_version": user(STAFF),
    "forms.import_form": user(ADMIN),
    "forms.publish": user(ADMIN),
    "forms.retire": user(ADMIN),
    # audit
    "audit.list_events": user(STAFF),
    "audit.get_record_history": user(STAFF, "record"),
    "audit.record_as_of": user(STAFF, "record"),
    # sync (devices only)
    "sync.push": device(),
    "sync.pull": device(),
    "sync.snapshot": device(),
    "sync.inbox": device(),
    # records and review
    "records.list_records": user(ALL),
    "records.get_record": user(ALL, "record"),
    "records.export_records": user(STAFF),
    "review.edit_record": user(STAFF, "record"),
    "review.review_record": user(STAFF, "record"),
    "review.comment_record": user(LEADERS, "record"),
    "review.resolve_conflict": user(STAFF, "conflict"),
    "review.list_quarantine": user(STAFF),
    "review.get_quarantined": user(STAFF, "op"),
    "review.release_quarantined": user(ADMIN, "op"),
    # web
    "web.signin_form": PUBLIC,
    "web.signin": PUBLIC,
    "web.signout": PUBLIC,
    "web.home": page(),
}


def caller_scope() -> Scope:
    """The scope of the authenticated caller of this request."""
    if "scope" not in g:
        g.scope = scope_of(g.user)
    return g.scope


def located_in_scope(located: Located, user: User, rule: Rule) -> bool:
    """True when `user` may reach an object that lives at `located` under `rule`."""
    if user.role == Role.ADMIN:
        return True
    if user.role in rule.own_only:
        return user.id in located.owner_ids
    if user.id in located.owner_ids:
        return True
    return caller_scope().contains_any(db_session(), located.grid_ids)


@bp.before_app_request
def enforce():
    """Authenticate the caller and check role and object scope; fail closed."""
    endpoint = request.endpoint
    if endpoint is None:
        return None  # no route matched: routing answers 404 or 405 itself
    rule = RULES.get(endpoint)
    if rule is None:
        log.error("endpoint %s has no access rule in server/api/access.py", endpoint)
        raise ApiError(ErrorCode.FORBIDDEN, "this endpoint has no access rule")
    if rule.auth is Auth.PUBLIC:
        return None
    if rule.auth is Auth.PAGE:
        caller = session_user()
        if caller is None:
            return redirect(url_for("web.signin_form", next=request.path))
        g.user, g.user_id, g.device, g.device_id = caller, caller.id, None, None
    elif rule.auth is Auth.DEVICE:
        caller = authenticate_device().user
    else:
        caller = authenticate_user()
    if caller.role not in rule.roles:
        raise ApiError(ErrorCode.FORBIDDEN, f"a {caller.role} may not do this")
    if rule.obj is not None:
        located = LOCATORS[rule.obj](db_session(), request.view_args or {})
        if located is None or not located_in_scope(located, caller, rule):
            raise ApiError(ErrorCode.NOT_FOUND, f"no such {rule.obj}")
    return None
