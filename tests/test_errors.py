import pytest
from flask import Blueprint
from sqlalchemy import select

from server.db import db_session
from server.errors import PROBLEM_JSON, ApiError, ErrorCode, problem_body
from server.models import User


def assert_problem(response, status, code):
    assert response.status_code == status
    assert response.mimetype == PROBLEM_JSON
    body = response.get_json()
    assert set(body) >= {"type", "title", "status", "detail", "code", "errors"}
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith("/" + code)
    return body


def test_every_catalogue_code_builds_a_well_formed_problem():
    slugs = set()
    for code in ErrorCode:
        body = problem_body(code)
        assert 400 <= body["status"] <= 599
        assert body["title"]
        slugs.add(body["code"])
    assert len(slugs) == len(ErrorCode)


def test_unknown_route_is_a_problem(client):
    assert_problem(client.get("/no/such/place"), 404, "not_found")


def test_wrong_method_is_a_problem_with_allow(client):
    response = client.post("/healthz")
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


@pytest.fixture
def failing_client(settings, database, monkeypatch):
    from server import create_app
    from server.api.access import PUBLIC, RULES

    # Every endpoint needs an access rule; these test-only ones are public.
    monkeypatch.setitem(RULES, "boom.boom", PUBLIC)
    monkeypatch.setitem(RULES, "boom.domain", PUBLIC)
    monkeypatch.setitem(RULES, "boom.taken", PUBLIC)
    monkeypatch.setitem(RULES, "boom.unfilled", PUBLIC)

    app = create_app(settings, database)
    bp = Blueprint("boom", __name__)

    @bp.get("/boom")
    def boom():
        raise RuntimeError("secret internal detail at /srv/app.py line 12")

    @bp.get("/domain")
    def domain():
        raise ApiError(ErrorCode.SEQ_GAP, "expected seq 4", extra={"expected_seq": 4})

    def add_users(*names):
        session = db_session()
        session.add_all(User(username=name, role="worker", password_hash="x") for name in names)
        session.commit()

    @bp.post("/taken")
    def taken():
        # what two requests creating one username at once come to: the second insert
        add_users("twin", "twin")

    @bp.post("/unfilled")
    def unfilled():
        add_users(None)

    app.register_blueprint(bp)
    return app.test_client()


def test_an_unexpected_error_leaks_nothing(failing_client):
    response = failing_client.get("/boom")
    body = assert_problem(response, 500, "internal_error")
    text = response.get_data(as_text=True)
    assert "secret internal detail" not in text
    assert "Traceback" not in text
    assert "/srv" not in text
    assert body["detail"]


def test_a_unique_key_taken_meanwhile_is_a_conflict_and_stores_nothing(failing_client, database):
    body = assert_problem(failing_client.post("/taken"), 409, "conflict")
    assert "same time" in body["detail"]
    with database.session() as session:
        assert session.scalars(select(User).where(User.username == "twin")).all() == []


def test_any_other_broken_constraint_is_the_servers_fault(failing_client):
    body = assert_problem(failing_client.post("/unfilled"), 500, "internal_error")
    assert "NOT NULL" not in body["detail"]


def test_domain_errors_carry_their_code_and_extras(failing_client):
    body = assert_problem(failing_client.get("/domain"), 409, "seq_gap")
    assert body["expected_seq"] == 4
    assert body["detail"] == "expected seq 4"
