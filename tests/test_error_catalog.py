"""The error catalog: every code a service or transport gives is a member of one domain's
`ErrorCode` enum, with the HTTP status of the kind it is raised with, and
docs/error-codes.md lists exactly those codes, naming operations and fields that exist. (The
device gateway's error-frame codes are docs/device-protocol.md's, checked in
test_device_protocol.py.)"""

from __future__ import annotations

import ast
import importlib
import re
from http import HTTPStatus
from pathlib import Path

import pytest
from graphql import (
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    build_schema,
)

from api.errors import ApiCode
from api.gateway import FrameCode
from auth.errors import AuthCode
from billing.errors import BillingCode
from core.errors import (
    Conflict,
    CoreCode,
    DomainError,
    ErrorCode,
    InvalidInput,
    LimitReached,
    NotFound,
    PermissionDenied,
    TimedOut,
    Unauthenticated,
    Unavailable,
    UpstreamFailed,
)
from fleet.errors import FleetCode

ROOT = Path(__file__).resolve().parent.parent
CHAIN = ("core", "models", "auth", "fleet", "billing", "api")
CATALOGS: list[type[ErrorCode]] = [CoreCode, AuthCode, FleetCode, BillingCode, ApiCode]
KINDS = {
    NotFound: 404, PermissionDenied: 403, Unauthenticated: 401, Conflict: 409,
    InvalidInput: 400, LimitReached: 429, Unavailable: 503, TimedOut: 504, UpstreamFailed: 502,
}
DOC = ROOT / "docs" / "error-codes.md"


def _source_files() -> list[Path]:
    return [path for package in CHAIN for path in sorted((ROOT / package).rglob("*.py"))]


def _import_every_module() -> None:
    for path in _source_files():
        if "migrations" not in path.parts:
            importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts)
                                    .removesuffix(".__init__"))


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def test_the_catalogs_are_these_and_their_codes_are_unique():
    _import_every_module()
    assert set(_subclasses(ErrorCode)) == set(CATALOGS)
    values = [member.value for catalog in CATALOGS for member in catalog]
    assert len(values) == len(set(values))
    for catalog in CATALOGS:
        for member in catalog:
            assert member.name == member.value
            assert isinstance(member.http_status, HTTPStatus)
            assert member.description and "\n" not in member.description


def test_each_kind_carries_its_status_and_a_code_of_that_status():
    assert {kind: kind.http_status for kind in KINDS} == KINDS
    for kind in KINDS:
        if kind is not UpstreamFailed:  # it has no code of its own: each raise names one
            assert kind.code.http_status == kind.http_status


def test_every_error_class_in_the_source_has_a_catalog_code_of_its_status():
    _import_every_module()
    for cls in _subclasses(DomainError):
        assert issubclass(cls, tuple(KINDS)), f"{cls.__qualname__} is of no kind"
        if hasattr(cls, "code"):
            assert isinstance(cls.code, ErrorCode), cls
            assert cls.code.http_status == cls.http_status, cls


def test_a_code_outside_the_catalogs_is_refused_when_raised():
    with pytest.raises(TypeError, match="'NO_ACCOUNT' is in no error catalog"):
        InvalidInput("No account uses this email.", code="NO_ACCOUNT")  # type: ignore[arg-type]


def test_a_code_of_another_status_is_refused_when_raised():
    with pytest.raises(TypeError,
                       match="INVITATION_CLOSED is a 409 code; InvalidInput answers 400"):
        InvalidInput("The invitation is closed.", code=FleetCode.INVITATION_CLOSED)


def test_an_error_class_with_a_code_outside_the_catalogs_is_refused():
    with pytest.raises(TypeError, match="'GONE' is in no error catalog"):
        type("Gone", (NotFound,), {"code": "GONE"})


def test_a_kind_without_a_code_needs_one_named():
    with pytest.raises(TypeError, match="UpstreamFailed has no code of its own"):
        UpstreamFailed("The device failed.")
    assert UpstreamFailed("x", code=FleetCode.DEVICE_FAILED).code == "DEVICE_FAILED"


def _catalog_names() -> dict[str, type[ErrorCode]]:
    return {catalog.__name__: catalog for catalog in CATALOGS}


def free_codes(source: str, path: str) -> list[str]:
    """Where `source` gives a code that is not a catalog member: a string for a `code=`
    argument or a `code =` assignment, or `Catalog.NAME` naming no member."""
    found = []
    for node in ast.walk(ast.parse(source, filename=path)):
        values: list[ast.expr] = []
        if isinstance(node, ast.Call):
            values = [kw.value for kw in node.keywords if kw.arg == "code"]
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "code" for t in targets) and node.value:
                values = [node.value]
        found += [(part.lineno, problem) for value in values for part, problem in _given(value)]
    return [f"{path}:{line}: {problem}" for line, problem in sorted(found)]


def _given(value: ast.expr) -> list[tuple[ast.expr, str]]:
    """The codes an expression may give that are not catalog members (through `a if c else b`
    and `a or b`; a call or a variable gives whatever it gives)."""
    if isinstance(value, ast.IfExp):
        return _given(value.body) + _given(value.orelse)
    if isinstance(value, ast.BoolOp):
        return [found for operand in value.values for found in _given(operand)]
    if (isinstance(value, ast.Constant) and isinstance(value.value, str)) \
            or isinstance(value, ast.JoinedStr):
        return [(value, "a code written as a string; use a member of a domain's ErrorCode")]
    catalogs = _catalog_names()
    if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) \
            and value.value.id in catalogs \
            and value.attr not in catalogs[value.value.id].__members__:
        return [(value, f"{value.value.id}.{value.attr} is no member of its catalog")]
    return []


def test_every_code_in_the_source_is_a_catalog_member():
    found = [
        finding
        for path in _source_files()
        for finding in free_codes(path.read_text(), path.relative_to(ROOT).as_posix())
    ]
    assert not found, "\n".join(found)


def test_the_scan_finds_free_codes():
    source = (
        'raise Conflict("x", code="INVITATION_CLOSED")\n'
        'raise Conflict("x", code=FleetCode.INVITATION_CLOSED)\n'
        'raise Conflict("x", code=FleetCode.INVITATION_CLOSD)\n'
        'raise NotFound("x", code=FleetCode.FUNCTION_NOT_FOUND if call else "NO_VARIABLE")\n'
        'class Gone(NotFound):\n    code = "GONE"\n'
        'class Offline(Conflict):\n    code = FleetCode.DEVICE_OFFLINE\n'
        'code = reply.get("code")\n'
        'DeviceError.create(code=code)\n'
    )
    assert free_codes(source, "fleet/x.py") == [
        "fleet/x.py:1: a code written as a string; use a member of a domain's ErrorCode",
        "fleet/x.py:3: FleetCode.INVITATION_CLOSD is no member of its catalog",
        "fleet/x.py:4: a code written as a string; use a member of a domain's ErrorCode",
        "fleet/x.py:6: a code written as a string; use a member of a domain's ErrorCode",
    ]


# docs/error-codes.md: a section per catalog, named by its import path, with one table row
# per code: | `CODE` | status | meaning | what returns it |.

_SECTION = re.compile(r"^## .*\(`(?P<path>[\w.]+)`\)$", re.M)
_ROW = re.compile(r"^\| `(?P<code>[A-Z_]+)` \| (?P<status>\d{3}) \| (?P<meaning>[^|]+?) \|"
                  r" (?P<where>[^|]*?) \|$", re.M)


def documented() -> dict[str, list[re.Match[str]]]:
    text = DOC.read_text()
    sections = list(_SECTION.finditer(text))
    return {
        section["path"]: list(_ROW.finditer(
            text, section.end(), sections[i + 1].start() if i + 1 < len(sections) else len(text)
        ))
        for i, section in enumerate(sections)
    }


def test_the_document_lists_every_catalog_and_every_code_with_its_status_and_meaning():
    sections = documented()
    assert set(sections) == {f"{c.__module__}.{c.__name__}" for c in CATALOGS}
    for path, rows in sections.items():
        catalog = _catalog_names()[path.rpartition(".")[2]]
        assert [row["code"] for row in rows] == [member.value for member in catalog], path
        for row in rows:
            member = catalog[row["code"]]
            assert (int(row["status"]), row["meaning"]) == (
                member.http_status.value, member.description), row["code"]
            assert row["where"].strip(), f"{row['code']}: say what returns it"


def _schema_names() -> tuple[set[str], dict[str, set[str]]]:
    """Every field, input field and argument name of `schema.graphql`, and each type's
    fields."""
    schema = build_schema((ROOT / "schema.graphql").read_text())
    names: set[str] = set()
    fields: dict[str, set[str]] = {}
    for kind in schema.type_map.values():
        if isinstance(kind, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType):
            fields[kind.name] = set(kind.fields)
            names.update(kind.fields)
            for field in kind.fields.values():
                names.update(getattr(field, "args", {}))
    return names, fields


def _protocol_names() -> set[str]:
    """The device protocol's frame types and error-frame codes."""
    text = (ROOT / "docs" / "device-protocol.md").read_text()
    return set(re.findall(r'"type": *"([a-z_]+)"', text)) | {code.value for code in FrameCode}


def test_what_the_document_says_returns_a_code_names_real_operations_and_fields():
    names, fields = _schema_names()
    frames = _protocol_names()
    unknown = []
    for rows in documented().values():
        for row in rows:
            for name in re.findall(r"`([^`]+)`", row["where"]):
                if re.fullmatch(r"[A-Z]\w*\.[a-z]\w*", name):
                    kind, _, field = name.partition(".")
                    known = field in fields.get(kind, ())
                elif re.fullmatch(r"[a-z][A-Za-z]*", name):
                    known = name in names or name in frames
                else:
                    continue  # a path, a command or an HTTP route
                if not known:
                    unknown.append(f"{row['code']}: `{name}`")
    assert unknown == [], "not in schema.graphql nor the device protocol: " + ", ".join(unknown)
