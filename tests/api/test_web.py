"""Web sign-in: session cookie flags, CSRF on every form, throttling, sign-out."""

from __future__ import annotations

import re

import pytest

from server import signin
from tests.api.factories import PASSWORD
from tests.api.problems import assert_problem


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_in(client, username="supervisor", password=PASSWORD, next_path="/web/"):
    form = client.get("/web/signin")
    token = csrf_of(form.get_data(as_text=True))
    return client.post(
        "/web/signin",
        data={"username": username, "password": password, "csrf_token": token, "next": next_path},
    )


def test_sign_in_sets_a_hardened_session_cookie(client, world):
    reply = sign_in(client)
    assert reply.status_code == 303
    assert reply.headers["Location"] == "/web/"
    cookie = reply.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    home = client.get("/web/")
    assert home.status_code == 200
    assert "supervisor" in home.get_data(as_text=True)
    for name in ("X-Content-Type-Options", "X-Frame-Options", "Content-Security-Policy"):
        assert name in home.headers


def test_pages_redirect_to_sign_in_without_a_session(client, world):
    reply = client.get("/web/")
    assert reply.status_code == 302
    assert "/web/signin" in reply.headers["Location"]


def test_forms_without_the_csrf_token_are_refused(client, world):
    client.get("/web/signin")
    reply = client.post("/web/signin", data={"username": "supervisor", "password": PASSWORD})
    assert_problem(reply, 403, "csrf_failed")
    sign_in(client)
    assert_problem(client.post("/web/signout", data={}), 403, "csrf_failed")
    assert client.get("/web/").status_code == 200


def test_session_api_calls_need_the_csrf_header_for_changes(client, world):
    sign_in(client, "admin")
    me = client.get("/api/v1/me")
    assert me.status_code == 200
    token = me.get_json()["csrf_token"]
    body = {"username": "new", "password": "long enough pw", "role": "worker"}
    assert_problem(client.post("/api/v1/users", json=body), 403, "csrf_failed")
    made = client.post("/api/v1/users", json=body, headers={"X-CSRF-Token": token})
    assert made.status_code == 201


def test_wrong_password_shows_the_form_again_and_locks(client, world):
    for _ in range(signin.MAX_USER_FAILURES):
        reply = sign_in(client, password="not the password")
        assert reply.status_code == 401
        assert "Wrong username or password" in reply.get_data(as_text=True)
    locked = sign_in(client)
    assert locked.status_code == 429
    assert "Retry-After" in locked.headers


def test_sign_out_ends_the_session(client, world):
    sign_in(client)
    page = client.get("/web/").get_data(as_text=True)
    reply = client.post("/web/signout", data={"csrf_token": csrf_of(page)})
    assert reply.status_code == 303
    assert client.get("/web/").status_code == 302


def test_a_password_reset_ends_existing_sessions(client, world):
    sign_in(client)
    assert client.get("/web/").status_code == 200
    supervisor = world.users["supervisor"]
    client.application.test_client().post(
        f"/api/v1/users/{supervisor}/password",
        json={"password": "a fresh password"},
        headers=world.headers("admin"),
    )
    assert client.get("/web/").status_code == 302


def test_next_never_leaves_the_site(client, world):
    reply = sign_in(client, next_path="//evil.example/")
    assert reply.headers["Location"] == "/web/"


@pytest.mark.parametrize(
    "next_path",
    ["/\t/evil.example/", "/\n/evil.example/", "/\r\n/evil.example/", "/\\evil.example/", "/ /x"],
)
def test_next_with_characters_browsers_drop_goes_home(client, world, next_path):
    reply = sign_in(client, next_path=next_path)
    assert reply.status_code == 303
    assert reply.headers["Location"] == "/web/"


def test_next_with_characters_browsers_drop_is_not_offered_by_the_form(client, world):
    page = client.get("/web/signin?next=/%09/evil.example").get_data(as_text=True)
    assert 'name="next" value="/web/"' in page
