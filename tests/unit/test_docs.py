"""The docs stay a short front page plus a site whose generated parts match their sources.

Why: README.md is what a newcomer reads first and what CI's `.ci/run` relies on for
`make test`; the figures in README.md and docs/ are rendered from
bench/results/published/ and must not be edited by hand (scripts/docs_figures.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def test_readme_is_a_front_page() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move topics to docs/"
    text = "\n".join(lines)
    for command in ("make up", "make test"):
        assert command in text


def anchors(page: Path) -> set[str]:
    """The ids mkdocs gives the page's headings (toc's slugify of their text)."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    headings = re.findall(r"^#{1,6} (.+)$", text, flags=re.M)
    return {slugify(h.replace("`", ""), "-") for h in headings}


def test_readme_links_resolve() -> None:
    # GitHub renders README.md on its own; mkdocs --strict checks only docs/.
    links = re.findall(r"\]\(((?:docs|bench|service)/[^)#]+)(?:#([^)]+))?\)", README.read_text())
    assert links
    for target, anchor in links:
        assert (ROOT / target).exists(), f"README.md links to a missing {target}"
        if anchor:
            assert anchor in anchors(ROOT / target), f"README.md: no #{anchor} in {target}"


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in DOCS.glob("*.md"):
        assert f": {page.name}" in nav, f"docs/{page.name} is not in mkdocs.yml's nav"


def test_generated_figures_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "docs_figures.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_bench_methods_are_included_not_copied() -> None:
    # docs/benchmarking.md pulls bench/README.md's section in; a marker renamed or lost
    # would leave the page without its methods and no build error.
    page = (DOCS / "benchmarking.md").read_text()
    bench = (ROOT / "bench" / "README.md").read_text()
    assert '--8<-- "bench/README.md:methods"' in page
    for marker in ("[start:methods]", "[end:methods]"):
        assert f"<!-- --8<-- {marker} -->" in bench
