"""Web sign-in for supervisors and admins: a session cookie and CSRF-protected forms.

The session cookie is HttpOnly and SameSite=Lax (set in the app factory), and
Secure behind TLS. Every form that changes state carries the session's CSRF token.
The supervisor pages themselves hang under /web/ and use `Auth.PAGE` rules.
"""

from __future__ import annotations

import re

from flask import Blueprint, g, make_response, redirect, render_template_string, request, url_for

from server.auth import check_csrf, csrf_token, end_session, start_session
from server.db import db_session
from server.errors import ApiError
from server.signin import authenticate

bp = Blueprint("web", __name__, url_prefix="/web")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} · fieldsync</title>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}
label{display:block;margin:.6rem 0}input{width:100%;padding:.3rem}.error{color:#a00}</style>
</head><body><h1>{{ title }}</h1>{% block body %}{% endblock %}</body></html>"""

SIGNIN = """{% extends page %}{% block body %}
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<form method="post" action="{{ url_for('web.signin') }}">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<input type="hidden" name="next" value="{{ next }}">
<label>Username
<input name="username" autocomplete="username" required value="{{ username }}"></label>
<label>Password
<input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>{% endblock %}"""

HOME = """{% extends page %}{% block body %}
<p>Signed in as <strong>{{ user.display_name }}</strong> ({{ user.username }}, {{ user.role }}).</p>
<form method="post" action="{{ url_for('web.signout') }}">
<input type="hidden" name="csrf_token" value="{{ csrf }}"><button type="submit">Sign out</button>
</form>{% endblock %}"""


_UNSAFE_IN_NEXT = re.compile(r"[\x00-\x20\x7f\\]")


def _safe_next(target: str | None) -> str:
    """Only a path on this site; anything else (//host, https://…) goes home.

    Browsers drop tabs and newlines from a URL and read a backslash as a slash, so a
    slash, a tab and a slash lead to another host: a target holding a control
    character, a space or a backslash is refused rather than cleaned.
    """
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and not _UNSAFE_IN_NEXT.search(target)
    ):
        return target
    return url_for("web.home")


def _render(template: str, status: int = 200, **context):
    from jinja2 import Template

    page = Template(PAGE)
    body = render_template_string(template, page=page, csrf=csrf_token(), **context)
    response = make_response(body, status)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/signin")
def signin_form():
    return _render(
        SIGNIN, title="Sign in", error=None, username="", next=_safe_next(request.args.get("next"))
    )


@bp.post("/signin")
def signin():
    check_csrf(request.form.get("csrf_token"))
    username = request.form.get("username", "")
    target = _safe_next(request.form.get("next"))
    session = db_session()
    try:
        user = authenticate(
            session, username, request.form.get("password", ""), request.remote_addr
        )
    except ApiError as error:
        status = error.code.status
        response = _render(
            SIGNIN, status, title="Sign in", error=error.detail, username=username, next=target
        )
        response.headers.update(error.headers)
        return response
    session.commit()
    start_session(user)
    return redirect(target, code=303)


@bp.post("/signout")
def signout():
    check_csrf(request.form.get("csrf_token"))
    end_session()
    return redirect(url_for("web.signin_form"), code=303)


@bp.get("/")
def home():
    return _render(HOME, title="fieldsync", user=g.user)
