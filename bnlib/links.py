"""Links of a built book that lead nowhere: every ``href`` and ``src`` of every HTML page,
resolved as a browser resolves it, must name a file of the build (and an element with that
``id`` or ``name`` when it has a ``#fragment``). Links off the site (``https:``, ``mailto:``,
``data:``, ...) are not followed: the book is read offline too. Files under ``_static`` are the
theme's, not pages, and are only checked as targets."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.anchors: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in ("href", "src") and not (tag == "link" and ("rel", "preconnect") in attrs):
                self.links.append(value)
            elif name == "id" or (name == "name" and tag == "a"):
                self.anchors.add(value)


def _read(path: Path, cache: dict[Path, _Page]) -> _Page:
    if path not in cache:
        page = _Page()
        page.feed(path.read_text(errors="replace"))
        cache[path] = page
    return cache[path]


def broken_links(root: str | Path) -> list[str]:
    """``page: link`` for each link of the HTML under ``root`` that points to a missing file
    or anchor, sorted; an empty list when every link resolves."""
    root = Path(root).resolve()
    cache: dict[Path, _Page] = {}
    broken = []
    for page_path in sorted(root.rglob("*.html")):
        if "_static" in page_path.relative_to(root).parts:
            continue  # the theme's template fragments ({{ pathto(...) }}), not pages
        for link in _read(page_path, cache).links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith("//"):
                continue  # off the site
            target = (page_path.parent / unquote(parts.path)).resolve() if parts.path else page_path
            if target.is_dir():
                target = target / "index.html"
            where = f"{page_path.relative_to(root)}: {link}"
            if not target.is_file():
                broken.append(where)
            elif parts.fragment and target.suffix == ".html" and \
                    unquote(parts.fragment) not in _read(target, cache).anchors:
                broken.append(where)
    return sorted(broken)
