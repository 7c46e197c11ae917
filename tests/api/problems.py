"""Checking problem+json replies."""

from server.errors import PROBLEM_JSON


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON
    body = response.get_json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert {"type", "title", "detail", "errors"} <= set(body)
    return body
