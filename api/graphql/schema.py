"""The schema: every domain's queries, mutations and subscriptions, with limits, masking and
caches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import strawberry
from graphql import GraphQLError
from graphql.execution import Executor
from strawberry import relay
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import ExecutionContext
from strawberry.types.base import StrawberryObjectDefinition

from api.errors import ApiCode
from api.graphql.accounts.mutations import AccountMutations, AppMutations
from api.graphql.accounts.queries import AccountQueries
from api.graphql.authentication import WebSocketAuthentication
from api.graphql.billing.mutations import BillingMutations
from api.graphql.context import Info
from api.graphql.customers.mutations import CustomerMutations
from api.graphql.devices.mutations import ClaimMutations, DeviceImportMutations, DeviceMutations
from api.graphql.devices.queries import DeviceQueries
from api.graphql.errors import MaskUnexpectedErrors, client_error, log_errors
from api.graphql.events.mutations import EventMutations
from api.graphql.events.queries import EventQueries
from api.graphql.events.subscriptions import Subscription
from api.graphql.limits import limit_extensions
from api.graphql.organizations.mutations import OrganizationMutations
from api.graphql.organizations.queries import OrganizationQueries
from api.graphql.products.mutations import ProductMutations
from api.graphql.products.queries import ProductQueries
from core.settings import Environment, Settings

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


@strawberry.type
class Query(AccountQueries, OrganizationQueries, ProductQueries, DeviceQueries, EventQueries):
    @strawberry.field(description="Fetch any object you can see by its global ID.")
    async def node(self, info: Info, id: relay.GlobalID) -> relay.Node | None:
        if not _is_node_type(info, id.type_name):
            raise client_error(f"{id.type_name} is not a type of node.", ApiCode.INVALID_ID)
        return await id.resolve_node(info, required=False)


def _is_node_type(info: Info, type_name: str) -> bool:
    definition = info.schema.get_type_by_name(type_name)
    return (
        isinstance(definition, StrawberryObjectDefinition)
        and not definition.is_interface
        and issubclass(definition.origin, relay.Node)
    )


@strawberry.type
class Mutation(
    AccountMutations,
    OrganizationMutations,
    ProductMutations,
    DeviceMutations,
    DeviceImportMutations,
    EventMutations,
    CustomerMutations,
    ClaimMutations,
    AppMutations,
    BillingMutations,
):
    pass


class Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        log_errors(errors)


class QuietExecutor(StrawberryGraphQLCoreExecutionContext):
    """Production's executor: Strawberry's own, with no "Did you mean …" suggestions in the
    errors of coercing variables: they would spell out the schema to a caller who may not
    introspect it. Validation hides them likewise (limits)."""

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> list[GraphQLError] | Executor[Any]:
        return super().build(*args, **{**kwargs, "hide_suggestions": True})


def build_schema(settings: Settings) -> Schema:
    production = settings.environment is Environment.PRODUCTION
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[WebSocketAuthentication, *limit_extensions(settings), MaskUnexpectedErrors],
        execution_context_class=QuietExecutor if production else None,
    )


def export_sdl(settings: Settings) -> str:
    return build_schema(settings).as_str() + "\n"
