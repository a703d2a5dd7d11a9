"""Every relative link in the README, the changelog and the user guide points at something that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

# [text](target) outside code spans and fences; images too.
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^(```|~~~)")
_CODE_SPAN = re.compile(r"`[^`]*`")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def _pages() -> list[Path]:
    return [REPO_ROOT / "README.md", REPO_ROOT / "CHANGELOG.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def _prose_lines(path: Path) -> list[tuple[int, str]]:
    lines, fenced = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, _CODE_SPAN.sub("", line)))
    return lines


def _slug(heading: str) -> str:
    # GitHub's anchors: lower case, punctuation dropped (except - and _), spaces become dashes.
    text = re.sub(r"[`*_]{1,2}([^`*_]+)[`*_]{1,2}", r"\1", heading).strip().lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    for _, line in _prose_lines(path):
        match = _HEADING.match(line)
        if match:
            slug = _slug(match.group(1))
            n = counts.get(slug, 0)
            counts[slug] = n + 1
            found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def _links() -> list[tuple[Path, int, str]]:
    out = []
    for page in _pages():
        for number, line in _prose_lines(page):
            for target in _LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                    continue
                out.append((page, number, target))
    return out


@pytest.mark.parametrize(
    ("page", "line", "target"),
    _links(),
    ids=[f"{p.relative_to(REPO_ROOT)}:{n}:{t}" for p, n, t in _links()],
)
def test_relative_link_resolves(page: Path, line: int, target: str) -> None:
    file_part, _, anchor = target.partition("#")
    resolved = (page.parent / file_part).resolve() if file_part else page
    assert resolved.exists(), f"{page.name}:{line}: {target} points at a missing file"
    if anchor and resolved.suffix == ".md":
        assert anchor in _anchors(resolved), f"{page.name}:{line}: no heading #{anchor} in {resolved.name}"
