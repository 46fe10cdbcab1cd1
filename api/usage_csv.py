"""The usage download: every counter row of a period as CSV.

    GET /v1/orgs/{slug}/usage.csv?period=YYYY-MM      (Authorization: Bearer <token>)

One row per device per day per kind with data operations, under the header
`date,product_id,product_slug,device_id,kind,data_operations`, sorted by date, then device,
then kind (then product ID), with ISO dates; `period` defaults to the current one. The body is
streamed as `billing.usage.counter_rows` reads it, a page at a time. The owner and
administrators may download it; anyone else with a token gets 404, as if the organization did
not exist; no token is 401, a bad period 400 (after the access check, so it tells outsiders
nothing).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, request_response

from api.authentication import BearerAuthentication, principal_of
from api.graphql.billing.access import billing_viewer
from api.http_errors import error_response
from billing import usage
from core.errors import CoreCode, DomainError, NotFound, Unauthenticated
from fleet.access import looked_up_slug
from models.organizations import Organization
from models.products import Product

HEADER = ("date", "product_id", "product_slug", "device_id", "kind", "data_operations")
# A spreadsheet reads a cell beginning with one of these as a formula (OWASP's CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: str) -> str:
    """A text cell no spreadsheet evaluates: one that would begin a formula gets a `'` first."""
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


async def usage_csv(request: Request) -> Response:
    principal = principal_of(request)
    if principal is None:
        return error_response(Unauthenticated.http_status, "An access token is required.",
                              CoreCode.UNAUTHENTICATED, {"WWW-Authenticate": "Bearer"})
    missing = NotFound("No such organization.", field="slug")
    try:
        organization = await Organization.get_or_none(
            slug=looked_up_slug(request.path_params["slug"], "slug"))
        if organization is None:
            raise missing
        await billing_viewer(principal, organization.id, missing)
        scope = await usage.view_scope(organization.id, request.query_params.get("period"),
                                       since=organization.created_at)
    except DomainError as error:
        return error_response(error.http_status, error.message, error.code)
    slugs = dict(await Product.filter(organization_id=organization.id).values_list("id", "slug"))
    filename = f"{organization.slug}-usage-{scope.period}.csv"
    return StreamingResponse(
        _rows(scope, slugs), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"',
                 "Cache-Control": "no-store"})


async def _rows(scope: usage.Scope, slugs: dict[int, str]) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    pending = 0
    async for row in usage.counter_rows(scope):
        writer.writerow((row.day.isoformat(), row.product_id,
                         text_cell(slugs.get(row.product_id, "")), text_cell(row.device_id),
                         text_cell(row.kind), row.operations))
        pending += 1
        if pending == usage.CSV_PAGE:
            yield _drain(buffer)
            pending = 0
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> bytes:
    chunk = buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    return chunk


routes = [
    Route("/v1/orgs/{slug}/usage.csv", BearerAuthentication(request_response(usage_csv)),
          methods=["GET"]),
]
