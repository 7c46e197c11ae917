import json

from sqlalchemy import text

from server.migrate import head_revisions


def test_healthz_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_reports_a_current_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["database"] == "ok"
    assert body["migrations"] == "current"
    assert set(body["revisions"]) == head_revisions()


def test_readyz_notices_a_database_behind_its_migrations(client, database):
    with database.engine.begin() as connection:
        saved = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        connection.execute(text("DELETE FROM alembic_version"))
    try:
        response = client.get("/readyz")
    finally:
        with database.engine.begin() as connection:
            for version in saved:
                connection.execute(
                    text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": version}
                )
    assert response.status_code == 503
    assert response.get_json()["migrations"] == "behind"


def test_metrics_count_requests_by_endpoint(client):
    client.get("/healthz")
    client.get("/healthz")
    body = client.get("/metrics").get_data(as_text=True)
    assert "fieldsync_http_requests_total" in body
    counted = [
        line
        for line in body.splitlines()
        if line.startswith("fieldsync_http_requests_total{") and 'endpoint="health.healthz"' in line
    ]
    assert counted
    assert float(counted[0].rsplit(" ", 1)[1]) >= 2
    assert "fieldsync_http_request_duration_seconds_bucket" in body


def test_every_request_is_one_json_log_line(settings, database, capsys):
    from server import create_app

    client = create_app(settings.replace(log_level="info"), database).test_client()
    capsys.readouterr()
    client.get("/healthz?token=secret-value", headers={"Authorization": "Bearer abc"})
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    requests = [line for line in lines if line["logger"] == "fieldsync.request"]
    assert len(requests) == 1
    line = requests[0]
    assert line["method"] == "GET"
    assert line["path"] == "/healthz"
    assert line["status"] == 200
    assert line["duration_ms"] >= 0
    assert "secret-value" not in json.dumps(line)
    assert "abc" not in json.dumps(line)


def test_log_fields_that_name_secrets_are_redacted():
    from server.logs import redact

    assert redact({"password": "x", "device_token": "y", "user": "u"}) == {
        "password": "[redacted]",
        "device_token": "[redacted]",
        "user": "u",
    }


def test_security_headers_on_responses(client):
    response = client.get("/healthz")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
