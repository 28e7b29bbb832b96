"""The documentation: the MkDocs site builds without a warning, and the README and the pages
stay short, linked and about the project.

``mkdocs build --strict`` fails on any warning: a broken link or anchor between pages, a
``::: module.Object`` that no longer resolves, a docstring the numpydoc parser cannot read.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 220

# Text that belongs to how the project was worked on, not to the project. "lent" is matched as
# a word, so that "silent" or "equivalent" pass; the others as substrings.
FORBIDDEN = [
    ("issue ", re.compile(r"issue ", re.IGNORECASE)),
    ("session", re.compile(r"session", re.IGNORECASE)),
    ("lent", re.compile(r"\blent\b", re.IGNORECASE)),
    ("/work/", re.compile(r"/work/")),
]

# [text](target) and ![alt](target); the target ends at the first space or parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def prose(text: str) -> str:
    """``text`` without its fenced code blocks (links there are code, not links)."""
    kept, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            kept.append(line)
    return "\n".join(kept)


def relative_links(text: str) -> list[str]:
    """Targets of the Markdown links of ``text`` that point into the repository."""
    targets = []
    for target in LINK.findall(prose(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
            continue                                   # http:, https:, mailto:, in-page
        targets.append(target)
    return targets


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in relative_links(path.read_text(encoding="utf-8")):
        file = target.split("#", 1)[0].split("?", 1)[0]
        if file.startswith("/") or not (path.parent / file).exists():
            broken.append(target)
    return broken


def forbidden_phrases(text: str) -> list[str]:
    return [name for name, pattern in FORBIDDEN if pattern.search(text)]


def test_site_builds_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        print(result.stdout)
        print(result.stderr)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-6000:]}"
    assert (tmp_path / "site" / "reference" / "forecaster" / "index.html").is_file()
    assert seconds < 60, f"the docs took {seconds:.0f} s to build"


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (at most {MAX_README_LINES})"


@pytest.mark.parametrize("path", [README, *pages()], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    assert broken_links(path) == [], f"{path.relative_to(ROOT)} links to missing files"


@pytest.mark.parametrize("path", [README, *pages()], ids=lambda p: str(p.relative_to(ROOT)))
def test_text_is_about_the_project(path: Path) -> None:
    found = forbidden_phrases(path.read_text(encoding="utf-8"))
    assert found == [], f"{path.relative_to(ROOT)} contains {found}"


def test_the_checks_catch_what_they_should(tmp_path: Path) -> None:
    """The two text checks fail on what they are meant to catch, and pass the near misses."""
    for name, _ in FORBIDDEN:  # each phrase inside a sentence, as written and capitalised
        for bad in {f"as the {name} said", f"as the {name.capitalize()} said"}:
            assert forbidden_phrases(bad), bad
    for fine in ["where the paper is silent", "equivalent", "excellent", "tissue"]:
        assert not forbidden_phrases(fine), fine
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "there.md").write_text("# There\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("[ok](sub/there.md#anchor) [web](https://example.org) [in](#here)\n"
                    "![gone](missing.png) [abs](/etc/passwd)\n"
                    "```\n[code](not/a/link.md)\n```\n", encoding="utf-8")
    assert broken_links(page) == ["missing.png", "/etc/passwd"]


def test_readme_links_to_every_guide() -> None:
    text = README.read_text(encoding="utf-8")
    for guide in sorted((DOCS / "guides").glob("*.md")):
        assert f"docs/guides/{guide.name}" in text, f"README.md does not link {guide.name}"
