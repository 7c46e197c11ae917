"""The message schemas accept the protocol's examples and refuse malformed ones by path."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mobile_schema.schemas import (
    SchemaError,
    bundled,
    json_pointer,
    schema,
    schema_names,
    validate,
)
from tests.device.examples import (
    CONFLICT,
    OP,
    PAGE,
    QUARANTINED,
    SHA,
    VALID,
    changed,
)

PROTOCOL_MESSAGES = {
    "register_request",
    "register_response",
    "op",
    "push_request",
    "push_response",
    "pull_request",
    "pull_response",
    "snapshot_request",
    "snapshot_response",
    "forms_bundle",
    "attachment_request",
    "attachment_target",
    "inbox_request",
    "inbox_item",
    "inbox_response",
    "conflict",
    "quarantined_op",
    "change",
    "problem",
}

PUSH = {"ops": [OP]}
PROBLEM = VALID["problem"][0]

INVALID = [
    # (schema, instance, the path the error must name)
    ("op", changed(OP, "/hlc", "0000018C2F3A4B5C"), "/hlc"),
    ("op", changed(OP, "/hlc", "18c2f3a4b5c"), "/hlc"),
    ("op", changed(OP, "/hlc", 1234), "/hlc"),
    ("op", changed(OP, "/record_id", "5B0C6A4E-8F1E-4B8E-9C53-1F0F6F3F2A10"), "/record_id"),
    ("op", changed(OP, "/record_id", "not-a-uuid"), "/record_id"),
    ("op", changed(OP, "/seq", 0), "/seq"),
    ("op", changed(OP, "/seq", 1.5), "/seq"),
    ("op", changed(OP, "/seq", True), "/seq"),
    ("op", changed(OP, "/base", -1), "/base"),
    ("op", changed(OP, "/grid_id", "14"), "/grid_id"),
    ("op", changed(OP, "/form_version", 0), "/form_version"),
    ("op", changed(OP, "/kind", "delete"), "/kind"),
    ("op", changed(OP, "/field", ""), "/field"),
    ("op", changed(OP, "/field", "a b"), "/field"),
    ("op", changed(OP, "/field", "x" * 129), "/field"),
    ("op", changed(OP, "/form_id", "1household"), "/form_id"),
    ("op", changed(OP, "/form_id", "forms/household"), "/form_id"),
    ("op", changed(OP, "/value", "x" * 65537), "/value"),
    ("op", changed(OP, "/value", {"nested": {"deeper": 1}}), "/value/nested"),
    ("op", changed(OP, "/value", list(range(20001))), "/value"),
    ("op", changed(OP, "/value", [{"latitude": [1]}]), "/value/0/latitude"),
    ("op", changed(OP, "/r", 1), ""),
    ("op", changed(OP, "/base", delete=True), ""),
    ("push_request", {"ops": []}, "/ops"),
    ("push_request", {"ops": [OP] * 5001}, "/ops"),
    ("push_request", {"ops": OP}, "/ops"),
    ("push_request", {"operations": [OP]}, ""),
    ("push_request", [OP], ""),
    ("push_request", changed(PUSH, "/ops/0/hlc", "zz"), "/ops/0/hlc"),
    ("register_request", {"username": "w"}, ""),
    ("register_request", {"username": "", "password": "p"}, "/username"),
    ("register_request", {"username": "w", "password": "p" * 1025}, "/password"),
    (
        "register_response",
        changed(VALID["register_response"][0], "/user/role", "root"),
        "/user/role",
    ),
    ("register_response", changed(VALID["register_response"][0], "/grid_ids", [1, 1]), "/grid_ids"),
    ("push_response", changed(VALID["push_response"][0], "/applied", -1), "/applied"),
    ("push_response", changed(VALID["push_response"][0], "/server_hlc", delete=True), ""),
    (
        "push_response",
        changed(VALID["push_response"][0], "/quarantined/0/reason", "bad"),
        "/quarantined/0/reason",
    ),
    ("conflict", changed(CONFLICT, "/values", CONFLICT["values"][:1]), "/values"),
    ("conflict", changed(CONFLICT, "/status", "closed"), "/status"),
    ("conflict", changed(CONFLICT, "/values/1/winner", "no"), "/values/1/winner"),
    ("quarantined_op", changed(QUARANTINED, "/detail", delete=True), ""),
    ("pull_request", {"cursor": -1}, "/cursor"),
    ("pull_request", {"cursor": "12"}, "/cursor"),
    ("pull_request", {"cursor": 0, "limit": 0}, "/limit"),
    ("pull_request", {"limit": 10}, ""),
    ("pull_response", changed(PAGE, "/changes/0/position", 0), "/changes/0/position"),
    ("pull_response", changed(PAGE, "/changes/1/device_id", None), "/changes/1/device_id"),
    ("pull_response", changed(PAGE, "/more", "false"), "/more"),
    ("snapshot_response", changed(PAGE, "/cursor", delete=True), ""),
    ("forms_bundle", {"forms": [{"form_id": "h", "version": 1}]}, "/forms/0"),
    (
        "attachment_request",
        {"sha256": SHA.upper(), "size": 1, "content_type": "image/png"},
        "/sha256",
    ),
    ("attachment_request", {"sha256": SHA, "size": 0, "content_type": "image/png"}, "/size"),
    ("attachment_request", {"sha256": SHA, "size": 9, "content_type": "jpeg"}, "/content_type"),
    ("attachment_target", {"sha256": SHA, "exists": False}, ""),
    ("inbox_request", {"after": -1}, "/after"),
    ("inbox_item", changed(VALID["inbox_item"][0], "/kind", "spam"), "/kind"),
    ("inbox_item", changed(VALID["inbox_item"][0], "/payload", {"x": 1}), "/payload"),
    (
        "inbox_item",
        changed(VALID["inbox_item"][2], "/payload/decision", "maybe"),
        "/payload/decision",
    ),
    ("inbox_item", changed(VALID["inbox_item"][0], "/created_at", "yesterday"), "/created_at"),
    ("inbox_response", {"items": []}, ""),
    ("problem", changed(PROBLEM, "/expected_seq", delete=True), ""),
    ("problem", changed(PROBLEM, "/status", 200), "/status"),
    ("problem", changed(PROBLEM, "/code", "Seq Gap"), "/code"),
]


def test_every_protocol_message_has_a_schema():
    assert set(schema_names()) == PROTOCOL_MESSAGES
    assert set(VALID) == PROTOCOL_MESSAGES


def test_every_schema_is_draft_2020_12_with_an_id():
    for name in schema_names():
        document = schema(name)
        assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert document["$id"].endswith(f"/{name}.json")


@pytest.mark.parametrize(
    ("name", "instance"),
    [(name, instance) for name, instances in VALID.items() for instance in instances],
)
def test_valid_examples_pass(name, instance):
    assert validate(name, instance) == []


@pytest.mark.parametrize(("name", "instance", "path"), INVALID)
def test_invalid_examples_fail_at_their_path(name, instance, path):
    errors = validate(name, instance)
    assert errors, f"{name} accepted {instance!r:.200}"
    assert path in {error.path for error in errors}, errors


def test_every_op_of_a_push_is_checked_and_named():
    ops = [changed(OP, "/seq", n) for n in range(1, 6)]
    ops[3]["hlc"] = "nope"
    ops[1]["record_id"] = "x"
    paths = [error.path for error in validate("push_request", {"ops": ops})]
    assert paths == ["/ops/1/record_id", "/ops/3/hlc"]


def test_messages_do_not_echo_the_value():
    secret = "correct horse battery staple " * 40
    errors = validate("register_request", {"username": "w", "password": secret})
    assert errors == [SchemaError("/password", "must be at most 1024 characters long")]


def test_errors_are_capped():
    ops = [changed(OP, "/hlc", "bad") for _ in range(500)]
    assert len(validate("push_request", {"ops": ops})) == 100


def test_unknown_schema_name_is_a_programming_error():
    with pytest.raises(KeyError, match="no message schema"):
        validate("push", {})


def test_json_pointer_escapes():
    assert json_pointer(["a/b", "c~d", 3]) == "/a~1b/c~0d/3"


def test_the_protocol_doc_names_only_existing_schemas():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    for name in re.findall(r"`([a-z_]+)\.json`", doc):
        assert name in schema_names() or name == "common", name


def test_schema_files_are_plain_json():
    folder = Path(__file__).resolve().parents[2] / "mobile_schema" / "schemas"
    for path in folder.glob("*.json"):
        json.loads(path.read_text("utf-8"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
odd_values = (
    json_values
    | st.binary()
    | st.sets(st.integers())
    | st.builds(object)
    | st.tuples(st.integers())
    | st.dictionaries(st.integers(), st.integers(), max_size=3)
)


@given(name=st.sampled_from(sorted(PROTOCOL_MESSAGES)), instance=odd_values)
def test_validate_never_raises(name, instance):
    errors = validate(name, instance)
    assert all(isinstance(error, SchemaError) and error.path is not None for error in errors)


@given(instance=st.fixed_dictionaries({key: json_values for key in OP}))
def test_validate_never_raises_on_op_shaped_input(instance):
    for error in validate("push_request", {"ops": [instance]}):
        assert error.path.startswith("/ops/0")


def test_deep_nesting_is_refused_not_raised():
    deep: object = 1
    for _ in range(5000):
        deep = [deep]
    assert validate("op", changed(OP, "/value", deep))


def reference_validators():
    """Validators that resolve $refs through a registry: what inlining must agree with."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    documents = {name: schema(name) for name in [*schema_names(), "common"]}
    registry = Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc, DRAFT202012)) for doc in documents.values()
    )
    return {name: Draft202012Validator(doc, registry=registry) for name, doc in documents.items()}


def test_inlined_schemas_decide_as_the_referenced_ones():
    references = reference_validators()
    cases = [(n, i) for n, items in VALID.items() for i in items] + [(n, i) for n, i, _ in INVALID]
    for name, instance in cases:
        assert references[name].is_valid(instance) == (validate(name, instance) == []), name
    for name in schema_names():
        assert '"$ref"' not in json.dumps(bundled(name)), name
