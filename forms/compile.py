"""Every expression of a form version compiled once, with the checks done at import.

An unknown function, a reference to a field that does not exist, an expression that
does not parse, or a cycle between calculations raises DefinitionError naming the
field and the expression; a version that builds can always be evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from forms.expr import ExpressionError, Scope, compile_text
from forms.expr.evaluate import Compiled
from forms.model import DefinitionError, Field
from forms.plan import RecordPlan, build_plan

EXPRESSIONS = ("relevant", "required", "constraint", "calculation", "repeat_count")
# Compiled to give their XPath boolean directly.
CONDITIONS = frozenset({"relevant", "required", "constraint", "choice_filter"})


@dataclass(slots=True)
class FieldPlan:
    """One field's compiled expressions and what it needs at validation time."""

    field: Field
    relevant: Compiled | None = None
    required: Compiled | None = None
    constraint: Compiled | None = None
    calculation: Compiled | None = None
    choice_filter: Compiled | None = None
    references: set[str] = dc_field(default_factory=set)


@dataclass(slots=True)
class CompiledForm:
    """The compiled expressions of a version and the order to compute calculations in."""

    plans: dict[str, FieldPlan] = dc_field(default_factory=dict)
    calculation_order: list[str] = dc_field(default_factory=list)
    depends: dict[str, set[str]] = dc_field(default_factory=dict)
    record: RecordPlan | None = None


def _compile(version: Any, target: Field, attribute: str, text: str, **scope_options: Any):
    scope = Scope(version, target, **scope_options)
    try:
        compiled = compile_text(text, scope, condition=attribute in CONDITIONS)
    except ExpressionError as error:
        raise DefinitionError(f"field {target.name!r}: {attribute} {text!r}: {error}") from None
    except RecursionError:
        raise DefinitionError(
            f"field {target.name!r}: {attribute} {text!r}: nested too deeply"
        ) from None
    return compiled, scope.references


def _order_calculations(plans: dict[str, FieldPlan], depends: dict[str, set[str]]) -> list[str]:
    """Calculations ordered so each comes after those it uses; a cycle is an error."""
    calculations = [name for name, plan in plans.items() if plan.calculation is not None]
    order: list[str] = []
    state: dict[str, int] = {}  # 1: being visited, 2: done

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [*trail[trail.index(name) :], name]
            expression = plans[name].field.calculation
            raise DefinitionError(
                f"field {name!r}: calculation {expression!r} is part of a cycle: "
                + " -> ".join(cycle)
            )
        state[name] = 1
        for used in sorted(depends.get(name, ())):
            if used in plans and plans[used].calculation is not None and used != name:
                visit(used, [*trail, name])
            elif used == name:
                expression = plans[name].field.calculation
                raise DefinitionError(
                    f"field {name!r}: calculation {expression!r} uses its own value"
                )
        state[name] = 2
        order.append(name)

    for name in calculations:
        visit(name, [])
    return order


def compile_version(version: Any) -> CompiledForm:
    """Compile and check every expression of a version."""
    compiled = CompiledForm()
    for target in version.fields.values():
        plan = FieldPlan(field=target)
        for attribute in EXPRESSIONS:
            text = getattr(target, attribute)
            if not text:
                continue
            closure, references = _compile(version, target, attribute, text)
            plan.references |= references
            if attribute == "calculation":
                compiled.depends[target.name] = references
            if attribute != "repeat_count":
                setattr(plan, attribute, closure)
        if target.choice_filter:
            plan.choice_filter, _ = _compile(
                version, target, "choice_filter", target.choice_filter, choice_filter=True
            )
        compiled.plans[target.name] = plan
    compiled.calculation_order = _order_calculations(compiled.plans, compiled.depends)
    compiled.record = build_plan(version, compiled.plans, compiled.calculation_order)
    return compiled
