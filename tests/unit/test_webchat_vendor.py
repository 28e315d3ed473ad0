"""The web chat's Markdown renderer is markdown-it, vendored: the pinned release, byte for byte,
with its licenses, loaded from this server (no CDN), raw HTML off. Checked without Node."""

from __future__ import annotations

import hashlib
import re
import tomllib
from fnmatch import fnmatch

from handlers.webchat import STATIC

VERSION = "14.3.3"
SHA256 = "494ba53db1aac9f676317dda7062bd9545b5f0bbe3f12b0ab1ab4f813825cfb0"


def test_the_vendored_renderer_is_the_pinned_release_unchanged() -> None:
    bundle = (STATIC / "markdown-it.min.js").read_bytes()
    assert hashlib.sha256(bundle).hexdigest() == SHA256
    assert bundle.startswith(f"/*! markdown-it {VERSION} ".encode())


def test_its_licenses_are_kept_next_to_it() -> None:
    assert "Vitaly Puzrin, Alex Kocharin" in (STATIC / "markdown-it.LICENSE").read_text()
    notices = (STATIC / "THIRD-PARTY-NOTICES.txt").read_text()
    assert f"markdown-it {VERSION}" in notices and SHA256 in notices
    for bundled in ("entities", "linkify-it", "mdurl", "punycode.js", "uc.micro"):
        assert f"\n{bundled} " in notices, f"{bundled}'s license is missing"


def test_the_page_loads_it_from_this_server_before_the_renderer_setup() -> None:
    page = (STATIC / "index.html").read_text()
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert all(src.startswith("/webchat/static/") for src in scripts), scripts
    assert scripts.index("/webchat/static/markdown-it.min.js") < scripts.index(
        "/webchat/static/markdown.js"
    )


def test_raw_html_is_off_and_links_are_checked() -> None:
    setup = (STATIC / "markdown.js").read_text()
    assert re.search(r"markdownit\(\{[^}]*\bhtml: false\b", setup)
    assert "md.validateLink = " in setup and 'md.disable("image")' in setup


def test_the_package_ships_the_vendored_files() -> None:
    root = STATIC.parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())
    shipped = project["tool"]["setuptools"]["package-data"]["handlers.webchat"]
    for name in ("markdown-it.min.js", "markdown-it.LICENSE", "THIRD-PARTY-NOTICES.txt"):
        assert any(fnmatch(f"static/{name}", pattern) for pattern in shipped), name
