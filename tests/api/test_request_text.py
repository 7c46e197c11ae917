"""Request text: the quick scan for NUL and lone surrogates never misses one, and NUL
in a path, a query or a form is refused before any view runs."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forms.unicode import unstorable_path
from server.errors import ApiError
from server.request_text import parse_body

# Text with NUL and surrogates, lone or paired, beside backslashes, quotes, zeros and
# Hangul (whose UTF-8 bytes open with 0xED, like a surrogate's).
pieces = ["\x00", "\ud800", "\udfff", "\ud83d", "\ude00", "\\", '"', "u", "0", "한", "a"]
surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
texts = st.text(st.sampled_from(pieces) | surrogates)
values = st.recursive(
    texts | st.integers(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


def _refused(raw: bytes) -> bool:
    try:
        parse_body(raw)
    except ApiError:
        return True
    return False


@given(values, st.booleans())
def test_a_body_is_refused_exactly_when_a_string_holds_nul_or_a_surrogate(value, escaped):
    text = json.dumps(value, ensure_ascii=escaped)
    raw = text.encode("utf-8", "surrogatepass")  # unescaped: a surrogate's own bytes
    # Escaped halves in order decode to one character; anything else stays a surrogate.
    assert _refused(raw) == (unstorable_path(json.loads(raw)) is not None)


def test_nul_and_every_lone_surrogate_escape_are_refused_and_pairs_taken():
    assert _refused(b'{"a": "x\\u0000"}')
    assert parse_body(b'"\\\\u0000"') == "\\u0000"  # a backslash, then text
    for code in range(0xD800, 0xE000):
        for escape in (f"\\u{code:04x}", f"\\u{code:04X}"):
            assert _refused(f'["x{escape}"]'.encode()), escape
        assert _refused(f'"{chr(code)}"'.encode("utf-8", "surrogatepass")), hex(code)
    for high, low in [(0xD800, 0xDC00), (0xDBFF, 0xDFFF), (0xD83D, 0xDE00), (0xDAB0, 0xDD0D)]:
        for pair in (f"\\u{high:04x}\\u{low:04x}", f"\\u{high:04X}\\u{low:04x}"):
            assert parse_body(f'"{pair}"'.encode()) == chr(
                0x10000 + (high - 0xD800) * 0x400 + low - 0xDC00
            )


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"a": ["x", "\ud800"]}, "/a/1"),
        ({"a/b~": "\udc00"}, "/a~1b~0"),
        ({"k\ud800": 1}, "/k\\ud800"),
        ({"nul": "a\x00"}, "/nul"),
        ({"emoji": "😀"}, None),
        (
            {"two halves are two surrogates in Python": "\ud83d\ude00"},
            "/two halves are two surrogates in Python",
        ),
    ],
)
def test_the_path_names_the_string(value, path):
    assert unstorable_path(value) == path


def test_nul_in_a_path_a_query_or_a_form_field_is_a_400(client, world):
    from tests.api.problems import assert_problem
    from tests.api.test_web import sign_in

    admin = world.headers("admin")
    replies = [
        (client.get("/api/v1/records?form_id=house%00hold", headers=admin), "query 'form_id'"),
        (client.get("/api/v1/records?a%00=1", headers=admin), "query 'a\\x00'"),
        (client.get("/api/v1/users/x%00y", headers=admin), "path"),
        (sign_in(client, username="super\x00visor"), "form 'username'"),
    ]
    for reply, where in replies:
        problem = assert_problem(reply, 400, "bad_request")
        assert problem["detail"] == f"the {where} holds NUL, which is not text"
    assert sign_in(client).status_code == 303  # the same form without NUL signs in
