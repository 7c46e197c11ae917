"""Default messages for validation errors, in the languages a form uses."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from types import MappingProxyType

from forms.model import Texts

DEFAULTS = {
    "required": ("此项为必填项。", "This field is required."),
    "constraint": ("填写的值不符合要求。", "The value does not meet the constraint."),
    "not_relevant": (
        "此项在当前情况下不适用，但填有内容。",
        "This field does not apply here but holds a value.",
    ),
    "choice_filtered": ("所选项不在可选范围内。", "The chosen option is not offered here."),
    "unknown_field": ("该版本表单没有此项。", "This form version has no such field."),
    "wrong_type": ("填写的值类型不对。", "The value has the wrong type."),
    "unknown_choice": ("所选项不在选项列表中。", "The choice is not in the list."),
    "out_of_range": ("填写的值超出范围。", "The value is out of range."),
    "read_only_field": ("此项不能填写。", "This field holds no value."),
}
CHINESE_HINTS = ("zh", "chinese", "中文", "汉语", "简体")


def is_chinese(language: str) -> bool:
    lowered = language.lower()
    return any(hint in lowered for hint in CHINESE_HINTS)


@lru_cache(maxsize=256)
def _message(code: str, languages: tuple[str, ...]) -> Texts:
    chinese, english = DEFAULTS.get(code, (code, code))
    if not languages:
        return MappingProxyType({"zh": chinese, "en": english})
    return MappingProxyType(
        {language: chinese if is_chinese(language) else english for language in languages}
    )


def message(code: str, languages: Iterable[str]) -> Texts:
    """The default message for `code` in each of `languages` (Chinese or English)."""
    return _message(code, tuple(languages))
