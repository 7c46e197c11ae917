"""XForm XML to JSON definitions, and definitions to XForms (through pyxform).

The reader walks the primary instance, its binds, the body controls and the itext
translations. Paths in expressions (`/data/group/x`, `../x`, `current()/../x`) become
`${name}` references, as the XLSForm that made the XForm wrote them.
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from forms.model import FormVersion
from forms.types import FIELD_TYPES
from forms.xlsform import (
    BIND_KEYS,
    ENCRYPTION_REFUSED,
    FS_ATTRIBUTES,
    FS_NAMESPACE,
    MESSAGE_KEYS,
    TRUE_WORDS,
    XLSFORM_TYPES,
    XLSFormError,
    choose_form_id,
    convert,
    fs_attribute,
    mark_or_other,
    one_line,
    write_xlsform,
)

XF = "{http://www.w3.org/2002/xforms}"
H = "{http://www.w3.org/1999/xhtml}"
JR = "{http://openrosa.org/javarosa}"
ODK = "{http://www.opendatakit.org/xforms}"
FS = "{" + FS_NAMESPACE + "}"
ITEXT_RE = re.compile(r"jr:itext\(\s*'([^']*)'\s*\)")
PATH_RE = re.compile(
    r"(?:current\(\)/)?((?:\.\./)+[A-Za-z_][\w.\-]*|/[A-Za-z_][\w.\-]*(?:/[A-Za-z_][\w.\-]*)+)"
)
# XPath string literals: text between quotes, which paths are never rewritten in.
LITERAL_RE = re.compile(r"""('[^']*'|"[^"]*")""")
TYPES_BY_BIND = {
    "string": "text",
    "int": "integer",
    "integer": "integer",
    "decimal": "decimal",
    "date": "date",
    "dateTime": "datetime",
    "time": "time",
    "geopoint": "geopoint",
    "geotrace": "geotrace",
    "geoshape": "geoshape",
    "barcode": "barcode",
    "binary": "file",
    "boolean": "acknowledge",
}
MEDIA_TYPES = {"image": "image", "audio": "audio", "video": "video"}
PRELOAD_TYPES = {
    ("timestamp", "start"): ("datetime", "start"),
    ("timestamp", "end"): ("datetime", "end"),
    ("date", "today"): ("date", "today"),
    ("property", "deviceid"): ("text", "deviceid"),
    ("property", "device_id"): ("text", "deviceid"),
    ("property", "subscriberid"): ("text", "subscriberid"),
    ("property", "simserial"): ("text", "simserial"),
    ("property", "phonenumber"): ("text", "phonenumber"),
    ("property", "username"): ("text", "username"),
    ("property", "email"): ("text", "email"),
}


METADATA_TYPES = frozenset(source for _, source in PRELOAD_TYPES.values()) | {"uri:deviceid"}


class XFormError(XLSFormError):
    """The file is not an XForm that can be read; the message says why."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _distinct(element: Element) -> list[Element]:
    """Children, once per name: a repeat's template and its first row share one."""
    seen: set[str] = set()
    out = []
    for child in element:
        name = _local(child.tag)
        if name not in seen:
            seen.add(name)
            out.append(child)
    return out


def _attribute_name(key: str) -> str:
    """`{ns}name` as the prefixed name pyxform writes (jr:, odk:, fs:)."""
    for uri, prefix in ((JR, "jr:"), (ODK, "odk:"), (FS, "fs:")):
        if key.startswith(uri):
            return prefix + key[len(uri) :]
    return key


class _Reader:
    def __init__(self, root: Element) -> None:
        head = root.find(f"{H}head")
        model = head.find(f"{XF}model") if head is not None else None
        if model is None:
            raise XFormError("not an XForm: no h:head/model")
        instance = next((i for i in model.findall(f"{XF}instance") if "id" not in i.attrib), None)
        if instance is None or len(instance) != 1:
            raise XFormError("not an XForm: the model has no primary instance")
        submission = model.find(f"{XF}submission")
        if submission is not None and submission.get("base64RsaPublicKey"):
            raise XFormError(ENCRYPTION_REFUSED)
        self.head, self.model, self.data = head, model, instance[0]
        self.root_name = _local(self.data.tag)
        self.secondary = {
            i.get("id"): i for i in model.findall(f"{XF}instance") if "id" in i.attrib
        }
        self.binds = {b.get("nodeset"): b for b in model.iter(f"{XF}bind") if b.get("nodeset")}
        self.translations: dict[str, dict[str, str]] = {}
        self.default_language: str | None = None
        self._read_itext()
        self.controls: dict[str, Element] = {}
        self.repeats: set[str] = set()
        body = root.find(f"{H}body")
        if body is not None:
            self._read_body(body)
        self.lists: dict[str, list[dict]] = {}
        self.paths: dict[str, str] = {}
        self.names: dict[str, int] = {}

    def _read_itext(self) -> None:
        itext = self.model.find(f"{XF}itext")
        if itext is None:
            return
        for translation in itext.findall(f"{XF}translation"):
            lang = translation.get("lang") or "default"
            if translation.get("default") is not None:
                self.default_language = lang
            for text in translation.findall(f"{XF}text"):
                values = text.findall(f"{XF}value")
                plain = [v for v in values if v.get("form") is None]
                if plain:
                    self.translations.setdefault(text.get("id"), {})[lang] = self._inline(plain[0])

    def _inline(self, element: Element) -> str:
        parts = [element.text or ""]
        for child in element:
            if _local(child.tag) == "output":
                parts.append("${" + (child.get("value") or "").strip().rsplit("/", 1)[-1] + "}")
            parts.append(child.tail or "")
        return "".join(parts).strip()

    def _read_body(self, element: Element) -> None:
        for child in element:
            ref = child.get("ref") or child.get("nodeset")
            tag = _local(child.tag)
            if tag == "repeat" and ref:
                self.repeats.add(ref)
                self.controls.setdefault(ref, child)
            elif ref and tag not in ("label", "hint", "item", "itemset"):
                self.controls.setdefault(ref, child)
            if tag in ("group", "repeat"):
                self._read_body(child)

    def label(self, element: Element | None, tag: str) -> dict[str, str] | None:
        node = element.find(f"{XF}{tag}") if element is not None else None
        if node is None:
            return None
        match = ITEXT_RE.fullmatch((node.get("ref") or "").strip())
        if match:
            return self.translations.get(match[1]) or None
        text = self._inline(node)
        return {"default": text} if text else None

    def message(self, value: str) -> dict[str, str] | None:
        match = ITEXT_RE.fullmatch(value.strip())
        if match:
            return self.translations.get(match[1])
        return {self.default_language or "default": value}

    def count(self, element: Element) -> None:
        for child in _distinct(element):
            name = _local(child.tag)
            self.names[name] = self.names.get(name, 0) + 1
            self.count(child)

    def field_name(self, path: tuple[str, ...]) -> str:
        return path[-1] if self.names.get(path[-1], 0) <= 1 else "/".join(path)

    def collect_paths(self, element: Element, path: tuple[str, ...]) -> None:
        for child in _distinct(element):
            child_path = (*path, _local(child.tag))
            self.paths["/" + "/".join((self.root_name, *child_path))] = self.field_name(child_path)
            self.collect_paths(child, child_path)

    def localize(self, expression: str | None) -> str | None:
        """Paths in an expression as `${name}` references where they name a field."""
        if expression is None:
            return None

        def replace(match: re.Match) -> str:
            path = match[1]
            if path.startswith("/"):
                name = self.paths.get(path)
            else:
                last = path.rsplit("/", 1)[-1]
                name = last if self.names.get(last) == 1 else None
            return match[0] if name is None else "${" + name + "}"

        # Splitting on literals puts them at the odd indexes.
        parts = LITERAL_RE.split(expression)
        return "".join(
            part if index % 2 else PATH_RE.sub(replace, part) for index, part in enumerate(parts)
        ).strip()

    def choices(self, control: Element, name: str) -> tuple[str, str | None]:
        itemset = control.find(f"{XF}itemset")
        if itemset is None:
            items = []
            for item in control.findall(f"{XF}item"):
                value = item.find(f"{XF}value")
                items.append(
                    {
                        "name": (value.text or "").strip() if value is not None else "",
                        "label": self.label(item, "label") or {},
                    }
                )
            self.lists[name] = items
            return name, None
        nodeset = itemset.get("nodeset") or ""
        match = re.match(r"instance\('([^']+)'\)(/[\w/]+)(?:\[(.*)\])?\s*\Z", nodeset.strip(), re.S)
        if match is None or match[1] not in self.secondary:
            raise XFormError(f"field {name!r}: itemset {nodeset!r} is not supported")
        list_name = match[1]
        external = self.secondary[list_name].get("src")
        if external:
            raise XFormError(
                f"field {name!r}: choices from the file {external} are not supported;"
                " list them in the form"
            )
        value_ref = (
            itemset.find(f"{XF}value").get("ref")
            if itemset.find(f"{XF}value") is not None
            else "name"
        )
        label_node = itemset.find(f"{XF}label")
        label_ref = label_node.get("ref", "label") if label_node is not None else "label"
        if list_name not in self.lists:
            items = []
            for item in self.secondary[list_name].iter(f"{XF}item"):
                values = {_local(child.tag): (child.text or "").strip() for child in item}
                choice: dict[str, Any] = {"name": values.pop(value_ref, "")}
                itext = re.fullmatch(r"jr:itext\((\w+)\)", label_ref.strip())
                if itext:
                    choice["label"] = self.translations.get(values.pop(itext[1], ""), {})
                else:
                    text = values.pop(label_ref, "")
                    choice["label"] = {"default": text} if text else {}
                if values:
                    choice["extra"] = values
                items.append(choice)
            self.lists[list_name] = items
        return list_name, self.localize(match[3]) if match[3] else None

    def node(self, element: Element, path: tuple[str, ...]) -> dict | None:
        xml_name = path[-1]
        nodeset = "/" + "/".join((self.root_name, *path))
        bind = self.binds.get(nodeset)
        control = self.controls.get(nodeset)
        attrs = {
            _attribute_name(k): v for k, v in (bind.attrib if bind is not None else {}).items()
        }
        attrs.pop("nodeset", None)
        bind_type = attrs.pop("type", "string")
        out: dict[str, Any] = {"name": self.field_name(path)}
        if out["name"] != xml_name:
            out["xml_name"] = xml_name
        if len(element):
            if not path[:-1] and xml_name == "meta":
                return None
            out["type"] = "repeat" if nodeset in self.repeats else "group"
            group_control = control
            if out["type"] == "repeat" and control is not None and control.get(f"{JR}count"):
                out["repeat_count"] = self.localize(control.get(f"{JR}count"))
            self.fill_common(out, attrs, group_control)
            children = [
                self.node(child, (*path, _local(child.tag))) for child in _distinct(element)
            ]
            out["fields"] = [child for child in children if child is not None]
            return out
        out["type"] = self.field_type(out, control, bind_type, attrs)
        self.fill_common(out, attrs, control)
        if out["type"] in ("select_one", "select_multiple") and control is not None:
            out["choices"], choice_filter = self.choices(control, out["name"])
            if choice_filter:
                out["choice_filter"] = choice_filter
        return out

    def field_type(self, out: dict, control: Element | None, bind_type: str, attrs: dict) -> str:
        declared = attrs.pop("fs:type", None)
        if declared in XLSFORM_TYPES or declared in FIELD_TYPES:
            # Written by our own export: the exact type, where XForm alone is ambiguous.
            kind = XLSFORM_TYPES.get(declared, declared)
            if kind != declared and declared not in ("select_one", "select_multiple", "photo"):
                out["source_type"] = declared
            if kind == "note":
                attrs.pop("readonly", None)
            if declared in METADATA_TYPES:
                attrs.pop("jr:preload", None)
                attrs.pop("jr:preloadParams", None)
            return kind
        tag = _local(control.tag) if control is not None else None
        if tag == "select1":
            return "select_one"
        if tag in ("select", "rank"):
            if tag == "rank":
                out["source_type"] = "rank"
            return "select_multiple"
        if tag == "upload":
            media = (control.get("mediatype") or "").split("/")[0]
            return MEDIA_TYPES.get(media, "file")
        if tag == "trigger":
            return "acknowledge"
        if tag == "range":
            out["source_type"] = "range"
            out["parameters"] = {
                k: control.get(k) for k in ("start", "end", "step") if control.get(k)
            }
            return "integer" if bind_type in ("int", "integer") else "decimal"
        preload = (attrs.get("jr:preload"), attrs.get("jr:preloadParams"))
        if tag is None and preload in PRELOAD_TYPES:
            kind, source = PRELOAD_TYPES[preload]
            out["source_type"] = source
            attrs.pop("jr:preload")
            attrs.pop("jr:preloadParams")
            return kind
        if tag is None:
            if "calculate" in attrs:
                return "calculate"
            out["source_type"] = "hidden"
            return "text"
        kind = TYPES_BY_BIND.get(bind_type, "text")
        readonly = str(attrs.get("readonly", "")).strip().lower() in TRUE_WORDS
        if kind == "text" and readonly and "calculate" not in attrs:
            attrs.pop("readonly")
            return "note"
        if bind_type not in TYPES_BY_BIND:
            raise XFormError(f"field {out['name']!r}: bind type {bind_type!r} is not supported")
        return kind

    def fill_common(self, out: dict, attrs: dict, control: Element | None) -> None:
        for key in ("label", "hint"):
            value = self.label(control, key)
            if value:
                out[key] = value
        if control is not None and control.get("appearance"):
            out["appearance"] = control.get("appearance")
        extra = {}
        for key, value in attrs.items():
            if key in BIND_KEYS:
                target = BIND_KEYS[key]
                if target == "readonly":
                    out["readonly"] = value.strip().lower() in TRUE_WORDS
                else:
                    out[target] = self.localize(value)
            elif key in MESSAGE_KEYS:
                out[MESSAGE_KEYS[key]] = self.message(value)
            elif key in FS_ATTRIBUTES:
                name, number_or_text = fs_attribute(out["name"], key, value)
                out[name] = number_or_text
            else:
                extra[key] = value
        if out.get("reference"):
            out["type"] = "reference"
        if extra:
            out["bind"] = extra

    def definition(self, form_id: str) -> dict:
        self.count(self.data)
        self.collect_paths(self.data, ())
        nodes = [self.node(child, (_local(child.tag),)) for child in _distinct(self.data)]
        fields = [node for node in nodes if node is not None]
        mark_or_other(fields, self.lists)
        title_node = self.head.find(f"{H}title")
        language = self.default_language or "default"
        definition: dict[str, Any] = {
            "form_id": form_id,
            "version": 1,
            "title": {language: (title_node.text or "").strip() if title_node is not None else ""},
            "fields": fields,
            "choices": self.lists,
        }
        if self.default_language:
            definition["default_language"] = self.default_language
        if self.data.get("version"):
            definition["settings"] = {"xform_version": self.data.get("version")}
        return definition


def read_xform(data: bytes, form_id: str | None = None, file_name: str | None = None) -> dict:
    """The JSON definition of an XForm document (see `choose_form_id` for its id)."""
    try:
        root = ElementTree.fromstring(data)
    except (ElementTree.ParseError, DefusedXmlException) as error:
        raise XFormError(f"not well-formed XML ({one_line(error)})") from None
    if _local(root.tag) != "html":
        raise XFormError(f"not an XForm: the root element is <{_local(root.tag)}>, not <h:html>")
    reader = _Reader(root)
    return reader.definition(choose_form_id(form_id, reader.data.get("id"), file_name))


def write_xform(version: FormVersion) -> str:
    """The version as an XForm, made by pyxform from the version's XLSForm."""
    return convert(write_xlsform(version), ".xlsx").xform
