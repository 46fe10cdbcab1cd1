"""The codes the transports themselves give: GraphQL arguments and limits, uploads, IDs, and
HTTP requests no endpoint serves.

GraphQL answers a request with errors (`errors[].extensions.code`) with HTTP 200, as GraphQL
over HTTP does; the other codes are `userErrors` of the mutation they concern.
"""

from __future__ import annotations

from http import HTTPStatus

from core.errors import ErrorCode


class ApiCode(ErrorCode):
    INVALID_ID = "INVALID_ID", HTTPStatus.BAD_REQUEST, "Not a global ID of the expected type."
    NOT_AN_UPLOAD = "NOT_AN_UPLOAD", HTTPStatus.BAD_REQUEST, \
        "The file was not sent as a multipart upload."
    ORIGIN_NOT_ALLOWED = "ORIGIN_NOT_ALLOWED", HTTPStatus.FORBIDDEN, \
        "A browser's preflight from an origin the API does not answer cross-origin."
    INVALID_ARGUMENT = "INVALID_ARGUMENT", HTTPStatus.OK, "An argument is out of its range."
    INVALID_CURSOR = "INVALID_CURSOR", HTTPStatus.OK, "A cursor this API did not give out."
    INVALID_TEXT = "INVALID_TEXT", HTTPStatus.OK, \
        "Text with NUL characters or unpaired surrogates."
    QUERY_TOO_BROAD = "QUERY_TOO_BROAD", HTTPStatus.OK, \
        "Too many fields in one selection set or in the query, or one field repeated."
    INTROSPECTION_DISABLED = "INTROSPECTION_DISABLED", HTTPStatus.OK, \
        "Schema introspection without an access token, in production."
    SUBSCRIPTION_OVER_HTTP = "SUBSCRIPTION_OVER_HTTP", HTTPStatus.OK, \
        "A subscription sent over HTTP; it runs over the WebSocket."
    QUERY_TOO_COSTLY = "QUERY_TOO_COSTLY", HTTPStatus.OK, "The query costs more than the limit."
    MALFORMED_REQUEST = "MALFORMED_REQUEST", HTTPStatus.BAD_REQUEST, \
        "The GraphQL request cannot be read: its body, query string or form is not what the " \
        "endpoint takes."
    MUTATION_OVER_GET = "MUTATION_OVER_GET", HTTPStatus.METHOD_NOT_ALLOWED, \
        "A mutation sent with GET; send it with POST."
    PATH_NOT_FOUND = "PATH_NOT_FOUND", HTTPStatus.NOT_FOUND, "No endpoint at this path."
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED", HTTPStatus.METHOD_NOT_ALLOWED, \
        "The endpoint does not take this HTTP method; `Allow` lists those it takes."
    SERVER_ERROR = "SERVER_ERROR", HTTPStatus.INTERNAL_SERVER_ERROR, \
        "An HTTP request failed on our side; its X-Request-ID finds it in the log."
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR", HTTPStatus.OK, \
        "A bug, masked; its requestId finds it in the log."
