"""Form definitions, versions, expressions and validation (pure: no I/O)."""

from forms.checks import Rejection
from forms.definition import from_dict, to_dict
from forms.diff import VersionDiff, diff_versions
from forms.model import Choice, DefinitionError, Field, FormVersion
from forms.revalidation import RecordState, Revalidation, revalidate
from forms.validate import FieldError, check_op, evaluate_record, validate_record

__all__ = [
    "Choice",
    "DefinitionError",
    "Field",
    "FieldError",
    "FormVersion",
    "RecordState",
    "Rejection",
    "Revalidation",
    "VersionDiff",
    "check_op",
    "diff_versions",
    "evaluate_record",
    "from_dict",
    "revalidate",
    "to_dict",
    "validate_record",
]
