"""Query limits: tokens, breadth, depth, aliases and cost.

Cheap checks come first. The token limit and the breadth bound stop parsing (`BoundedParser`);
`Breadth` then counts the fragments spread in each selection set, before validation, so
graphql-core's OverlappingFieldsCanBeMerged, which compares every pair of fields sharing a
response name, never sees a document that would make it slow (`me { id } me { id } …` 489
times took it 0.9 s). A renamed operation is a new cache key but buys nothing: the bound holds
whatever the name, and refused documents are not cached.

The validation rules are classes built once, when the schema is built. The cache of prepared
documents is keyed by the rule classes, so rules rebuilt per request (as Strawberry's limiter
extensions do when used as factories, strawberry#4635) would never hit it.
The cost depends on variables (`first: $n`), so it is computed per execution, not cached
with validation.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from graphql import (
    ASTValidationRule,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    NameNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    StringValueNode,
    Visitor,
    get_named_type,
    validate,
    value_from_ast,
    visit,
)
from graphql import OperationType as GraphQLOperationType
from graphql.language.parser import Parser
from graphql.type.definition import GraphQLInterfaceType
from starlette.requests import Request
from strawberry.extensions import AddValidationRules, SchemaExtension
from strawberry.extensions.max_aliases import create_validator as aliases_validator
from strawberry.extensions.query_depth_limiter import IgnoreContext
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types.graphql import OperationType

from api.errors import ApiCode
from core import text
from core.settings import Settings

T = TypeVar("T")
MAX_PAGE_SIZE = 100
# The breadth bound: fields in one selection set (its fragments included), times one response
# name may appear there, fields in the whole document. With these the validation of the largest
# document the token limit lets through takes a few milliseconds.
MAX_SELECTIONS = 100
MAX_REPEATS = 5
MAX_FIELDS = 500
CACHE_SIZE = 256
INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})
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
    production = not settings.development

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

    class Preparation(SchemaExtension):
        """Parse, bound and validate, with the documents within the bound cached by their text.
        Parsing, the bound and validation run in a worker thread: a long document takes the parser
        milliseconds, during which the event loop keeps serving others. In production anonymous
        callers get no schema introspection, and nobody gets "Did you mean …" suggestions."""

        prepared: PreparedDocument | None = None
        breadth: Breadth | None = None
        syntax_error: GraphQLError | None = None

        async def on_parse(self) -> AsyncIterator[None]:
            ctx = self.execution_context
            self.prepared = PREPARED.get((ctx.query or "", tuple(ctx.validation_rules)))
            if self.prepared is not None:
                ctx.graphql_document = self.prepared.document
            else:
                try:
                    ctx.graphql_document, self.breadth = await _off_loop(
                        _parse_and_measure, ctx.query or "", max_tokens
                    )
                except GraphQLError as error:
                    # Raised from this hook, the error would escape Strawberry's handling over
                    # the WebSocket; it is reported at validation instead, in place of a
                    # document that stands for the refused one.
                    self.syntax_error = error
                    ctx.graphql_document = _stand_in(ctx.operation_name)
            yield

        async def on_validate(self) -> AsyncIterator[None]:
            ctx = self.execution_context
            ctx.pre_execution_errors = await self._errors()
            yield

        async def _errors(self) -> list[GraphQLError]:
            ctx = self.execution_context
            if self.syntax_error is not None:
                return [self.syntax_error]
            if self.prepared is None:
                document, breadth = ctx.graphql_document, self.breadth
                assert document is not None and breadth is not None
                if breadth.error is not None:
                    return [breadth.error]
                rules = tuple(ctx.validation_rules)
                errors = await _off_loop(_validate, ctx.schema._schema, document, rules, production)
                self.prepared = PreparedDocument(document, breadth.introspects, errors)
                PREPARED.put((ctx.query or "", rules), self.prepared)
            if self.prepared.errors:
                return self.prepared.errors
            if production and self.prepared.introspects and ctx.context.principal is None:
                return [GraphQLError(
                    "Introspection needs an access token: sign in, or use the published "
                    "schema.graphql.",
                    extensions={"code": ApiCode.INTROSPECTION_DISABLED},
                )]
            if (ctx.operation_type is OperationType.SUBSCRIPTION
                    and isinstance(ctx.context.request, Request)):
                return [GraphQLError(
                    "Subscriptions run over the WebSocket at /graphql (graphql-transport-ws), "
                    "not over HTTP.",
                    extensions={"code": ApiCode.SUBSCRIPTION_OVER_HTTP},
                )]
            return []

    return [LimitRules, Preparation, StorableText, CostLimit]


def _stand_in(operation_name: str | None) -> DocumentNode:
    """`query <operation_name> { __typename }`, built without parsing the name."""
    operation = OperationDefinitionNode(
        operation=GraphQLOperationType.QUERY,
        name=NameNode(value=operation_name) if operation_name else None,
        variable_definitions=(),
        directives=(),
        selection_set=SelectionSetNode(selections=(
            FieldNode(name=NameNode(value="__typename"), arguments=(), directives=()),
        )),
    )
    return DocumentNode(definitions=(operation,))


def _parse_and_measure(query: str, max_tokens: int) -> tuple[DocumentNode, Breadth]:
    document = BoundedParser(query, max_tokens).parse_document()
    return document, Breadth(document)


@dataclass(frozen=True)
class PreparedDocument:
    document: DocumentNode
    introspects: bool
    errors: list[GraphQLError]


class PreparedDocuments:
    """The documents within the bound, parsed and validated, by query text and validation rules
    (least recently used dropped first). Refused documents are not kept: fresh operation names
    would fill the cache with them, and a large heap makes every full garbage collection slow."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = self.misses = 0
        self._entries: OrderedDict[tuple[str, tuple[Any, ...]], PreparedDocument] = OrderedDict()

    def get(self, key: tuple[str, tuple[Any, ...]]) -> PreparedDocument | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return entry

    def put(self, key: tuple[str, tuple[Any, ...]], entry: PreparedDocument) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


PREPARED = PreparedDocuments(CACHE_SIZE)
# One worker: parsing and validation are CPU work under the GIL, so more workers would not
# finish sooner but would take the GIL from the event loop more often.
_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="graphql-prepare")


async def _off_loop(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(
        _WORKER, partial(function, *args, **kwargs)
    )


def _validate(
    schema: GraphQLSchema,
    document: DocumentNode,
    rules: tuple[type[ASTValidationRule], ...],
    hide_suggestions: bool,
) -> list[GraphQLError]:
    return validate(
        schema,
        document,
        (*rules, MaybeNullValidationRule, OneOfInputValidationRule),
        hide_suggestions=hide_suggestions,
    )


class Breadth:
    """One walk over a parsed document: its breadth against the bound (`error`, None if within)
    and whether it asks for schema introspection. Fragments spread in a selection set count
    there (as OverlappingFieldsCanBeMerged sees them), each fragment counted once."""

    def __init__(self, document: DocumentNode) -> None:
        self.error: GraphQLError | None = None
        self.introspects = False
        self._fields = 0
        self._fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self._flattened: dict[str, Counter[str]] = {}
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode):
                self._check(definition.selection_set)
            if self.error is not None:
                return
        if self._fields > MAX_FIELDS:
            self.error = _too_many_fields()

    def _check(self, root: SelectionSetNode) -> None:
        """Every field-level selection set under `root`, without recursion (the nesting is as
        deep as the token limit allows)."""
        pending = [root]
        while pending and self.error is None:
            selection_set = pending.pop()
            names = self._names(selection_set, set())
            count = sum(names.values())
            name, repeats = names.most_common(1)[0] if names else ("", 0)
            if repeats > MAX_REPEATS:
                self.error = _repeated(name)
            elif count > MAX_SELECTIONS:
                self.error = _too_many_selections()
            stack = [selection_set]
            while stack:
                for selection in stack.pop().selections:
                    if isinstance(selection, FieldNode):
                        self._fields += 1
                        self.introspects |= selection.name.value in INTROSPECTION_FIELDS
                        if selection.selection_set is not None:
                            pending.append(selection.selection_set)
                    elif isinstance(selection, InlineFragmentNode):
                        stack.append(selection.selection_set)

    def _names(self, selection_set: SelectionSetNode, spread: set[str]) -> Counter[str]:
        """Response names in `selection_set` with its inline fragments and (each once) the
        fragments it spreads; `spread` guards against fragment cycles."""
        names: Counter[str] = Counter()
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                names[(selection.alias or selection.name).value] += 1
            elif isinstance(selection, InlineFragmentNode):
                names += self._names(selection.selection_set, spread)
            elif isinstance(selection, FragmentSpreadNode):
                fragment_name = selection.name.value
                fragment = self._fragments.get(fragment_name)
                if fragment is None or fragment_name in spread:
                    continue
                spread.add(fragment_name)
                if fragment_name not in self._flattened:
                    self._flattened[fragment_name] = self._names(fragment.selection_set, spread)
                names += self._flattened[fragment_name]
        return names


class BoundedParser(Parser):
    """graphql-core's parser, stopping as soon as one selection set or the document passes the
    bound (counting the fields written there; `Breadth` then counts fragments too), so that
    parsing the stalling query stops at its sixth `me`."""

    def __init__(self, source: str, max_tokens: int) -> None:
        super().__init__(source, max_tokens=max_tokens)
        self._open: list[Counter[str]] = []
        self._fields = 0

    def parse_selection_set(self) -> SelectionSetNode:
        self._open.append(Counter())
        try:
            return super().parse_selection_set()
        finally:
            self._open.pop()

    def parse_selection(self) -> SelectionNode:
        selection = super().parse_selection()
        if isinstance(selection, FieldNode):
            names = self._open[-1]
            name = (selection.alias or selection.name).value
            names[name] += 1
            self._fields += 1
            if names[name] > MAX_REPEATS:
                raise _repeated(name)
            if names.total() > MAX_SELECTIONS:
                raise _too_many_selections()
            if self._fields > MAX_FIELDS:
                raise _too_many_fields()
        return selection


def _repeated(name: str) -> GraphQLError:
    return _too_broad(f"`{name}` is selected more than {MAX_REPEATS} times in one selection "
                      "set. Select each field once.")


def _too_many_selections() -> GraphQLError:
    return _too_broad(f"A selection set has more than {MAX_SELECTIONS} fields. Split the query.")


def _too_many_fields() -> GraphQLError:
    return _too_broad(f"The query has more than {MAX_FIELDS} fields. Split it.")


def _too_broad(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": ApiCode.QUERY_TOO_BROAD})


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
