"""Query limits: depth, aliases, tokens and cost.

The validation rules are classes built once, when the schema is built. graphql-core's
validation cache is keyed by the rule classes, so rules rebuilt per request (as Strawberry's
limiter extensions do when used as factories, strawberry#4635) would never hit it.
The cost depends on variables (`first: $n`), so it is computed per execution, not cached
with validation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    ASTValidationRule,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    Visitor,
    get_named_type,
    value_from_ast,
    visit,
)
from graphql.type.definition import GraphQLInterfaceType
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as aliases_validator
from strawberry.extensions.query_depth_limiter import IgnoreContext
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator

from api.errors import ApiCode
from core import text
from core.settings import Settings

MAX_PAGE_SIZE = 100
# Fields that cost more than 1 because each one reaches a device and waits for its answer
# (with the default GRAPHQL_MAX_COST, at most 19 variable reads in one query).
FIELD_COSTS = {("Device", "variable"): 50}


def _is_introspection(context: IgnoreContext) -> bool:
    return context.field_name.startswith("__")


def query_cost(
    schema: GraphQLSchema,
    document_definitions: tuple[Any, ...],
    operation: OperationDefinitionNode,
    variables: dict[str, Any] | None,
) -> int:
    """Saleor's model: every field costs 1 (or its `FIELD_COSTS`), and a connection multiplies
    what it selects by the number of nodes it may return (`first`, else its default, else the
    page maximum)."""
    fragments = {
        d.name.value: d for d in document_definitions if isinstance(d, FragmentDefinitionNode)
    }
    root = schema.get_root_type(operation.operation)
    return _selection_cost(schema, root, operation.selection_set, fragments, variables or {})


def _selection_cost(
    schema: GraphQLSchema,
    parent: GraphQLNamedType | None,
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any],
) -> int:
    if selection_set is None or not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            name = selection.name.value
            if name.startswith("__"):
                continue
            definition = parent.fields.get(name)
            if definition is None:
                continue
            multiplier = 1
            if "first" in definition.args:
                multiplier = _first(selection, definition.args["first"], variables)
            child = get_named_type(definition.type)
            total += FIELD_COSTS.get((parent.name, name), 1) + multiplier * _selection_cost(
                schema, child, selection.selection_set, fragments, variables
            )
        elif isinstance(selection, InlineFragmentNode):
            target = (
                schema.get_type(selection.type_condition.name.value)
                if selection.type_condition
                else parent
            )
            total += _selection_cost(schema, target, selection.selection_set, fragments, variables)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                target = schema.get_type(fragment.type_condition.name.value)
                total += _selection_cost(
                    schema, target, fragment.selection_set, fragments, variables
                )
    return total


def _first(node: FieldNode, argument: Any, variables: dict[str, Any]) -> int:
    for arg in node.arguments or ():
        if arg.name.value == "first":
            value = value_from_ast(arg.value, argument.type, variables)
            if isinstance(value, int):
                return max(0, min(value, MAX_PAGE_SIZE))
    default = argument.default_value
    return default if isinstance(default, int) else MAX_PAGE_SIZE


def limit_extensions(settings: Settings) -> list[Any]:
    """Schema extensions enforcing the configured limits (and caching parse and validation)."""
    rules: list[type[ASTValidationRule]] = [
        depth_validator(settings.graphql_max_depth, _is_introspection),
        aliases_validator(settings.graphql_max_aliases),
    ]
    max_cost = settings.graphql_max_cost
    max_tokens = settings.graphql_max_tokens

    class LimitRules(AddValidationRules):
        def __init__(self) -> None:
            super().__init__(rules)

    class CostLimit(SchemaExtension):
        """Compute the cost before execution, refuse it over the limit, report it."""

        cost: int | None = None

        def on_execute(self) -> Iterator[None]:
            ctx = self.execution_context
            definitions = () if ctx.graphql_document is None else ctx.graphql_document.definitions
            operation = _operation(definitions, ctx.operation_name)
            if operation is not None:
                self.cost = query_cost(ctx.schema._schema, definitions, operation, ctx.variables)
                if self.cost > max_cost:
                    ctx.result = ExecutionResult(
                        data=None,
                        errors=[
                            GraphQLError(
                                f"The query costs {self.cost}, more than the limit of {max_cost}. "
                                "Ask for fewer items per page or fewer nested connections.",
                                extensions={"code": ApiCode.QUERY_TOO_COSTLY},
                            )
                        ],
                    )
            yield

        def get_results(self) -> dict[str, Any]:
            if self.cost is None:
                return {}
            return {"cost": {"requestedQueryCost": self.cost, "maximumAvailable": max_cost}}

    return [
        lambda: ParserCache(maxsize=256),
        LimitRules,
        lambda: ValidationCache(maxsize=256),
        lambda: MaxTokensLimiter(max_token_count=max_tokens),
        StorableText,
        CostLimit,
    ]


class StorableText(SchemaExtension):
    """Refuse an operation whose text input (variables or string literals) holds a NUL
    character or a lone surrogate: no database can store it (see `core.text`)."""

    def on_execute(self) -> Iterator[None]:
        ctx = self.execution_context
        literals = _StringLiterals()
        if ctx.graphql_document is not None:
            visit(ctx.graphql_document, literals)
        if not (text.storable(ctx.variables or {}) and text.storable(literals.values)):
            ctx.result = ExecutionResult(
                data=None,
                errors=[GraphQLError(text.REFUSAL, extensions={"code": ApiCode.INVALID_TEXT})],
            )
        yield


class _StringLiterals(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.values: list[str] = []

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        self.values.append(node.value)


def _operation(definitions: tuple[Any, ...], name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((op for op in operations if op.name and op.name.value == name), None)
