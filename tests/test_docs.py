"""The manual stays true to the code: the roles table, the settings table, and every relative
link of README.md and docs/ (file and anchor)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_core import PydanticUndefined

from core.settings import Settings
from fleet.permissions import ROLE_PERMISSIONS, Permission
from models.organizations import Role

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MANUAL = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`[^`]*`")


def prose_lines(path: Path) -> list[str]:
    """The lines of a Markdown file outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def table(path: Path, header: list[str]) -> list[list[str]]:
    """The body rows of the first table in `path` whose header starts with `header`."""
    rows: list[list[str]] = []
    found = False
    for line in prose_lines(path):
        if not line.startswith("|"):
            if found:
                break
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if not found:
            found = cells[: len(header)] == header
            continue
        if not set("".join(cells)) <= set("-: "):
            rows.append(cells)
    assert found, f"{path.name} has no table with the header {header}"
    return rows


def code_name(cell: str) -> str:
    """`name` -> name: the first inline-code span of a cell."""
    match = re.match(r"`([^`]+)`", cell)
    assert match, f"{cell!r} does not start with a `name`"
    return match.group(1)


def test_roles_table_matches_the_role_permissions() -> None:
    roles = [role.value for role in Role]
    rows = table(DOCS / "organizations-and-teams.md", ["permission", "allows", *roles])
    documented: dict[Role, set[Permission]] = {role: set() for role in Role}
    listed = []
    for cells in rows:
        permission = Permission(code_name(cells[0]))
        listed.append(permission)
        marks = cells[2:]
        assert len(marks) == len(roles), cells
        assert set(marks) <= {"✓", ""}, cells
        for role, mark in zip(Role, marks, strict=True):
            if mark:
                documented[role].add(permission)
    assert sorted(listed) == sorted(Permission), "every permission has exactly one row"
    assert documented == {role: set(ROLE_PERMISSIONS[role]) for role in Role}


def test_every_setting_is_documented_with_its_default() -> None:
    rows = table(DOCS / "configuration.md", ["variable", "default", "meaning"])
    defaults = {code_name(cells[0]): cells[1] for cells in rows}
    assert sorted(defaults) == sorted(name.upper() for name in Settings.model_fields)
    for name, field in Settings.model_fields.items():
        default, cell = field.default, defaults[name.upper()]
        assert default is not PydanticUndefined, name
        if default == "":
            assert cell.startswith("empty"), (name, cell)
        elif isinstance(default, bool):
            assert code_name(cell) == str(default).lower(), (name, cell)
        elif isinstance(default, int | float):
            assert float(code_name(cell)) == default, (name, cell)
        else:
            assert code_name(cell) == str(default), (name, cell)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for line in prose_lines(path):
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def relative_links(path: Path) -> list[str]:
    targets = []
    for line in prose_lines(path):
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if not re.match(r"[a-z][a-z0-9+.-]*:", target):
                targets.append(target)
    return targets


def test_the_manual_has_links() -> None:
    assert len(MANUAL) > 5
    assert all(relative_links(path) for path in MANUAL if path.name != "device-protocol.md")


@pytest.mark.parametrize("path", MANUAL, ids=lambda path: path.name)
def test_every_relative_link_points_to_a_file_and_anchor(path: Path) -> None:
    broken = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        exists = linked.exists()
        anchored = not anchor or (linked.suffix == ".md" and anchor in anchors(linked))
        if not (exists and anchored):
            broken.append(target)
    assert broken == []
