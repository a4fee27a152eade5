"""The documentation stays true: config examples load (or fail as documented) and links resolve.

* Every ```yaml block of docs/config-language.md that is a whole config (has
  `quantization_config:`) must load with :func:`qplan.load_config`. A block preceded by
  ``<!-- invalid: CODE -->`` is a deliberate mistake: it must fail with a diagnostic of that code.
* The ```python block of the config language page runs as written.
* Every relative link in README.md and docs/*.md names an existing file (anchors are checked on
  pages of this repository: the heading must exist).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qplan import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG_LANGUAGE = ROOT / "docs" / "config-language.md"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_BLOCK = re.compile(r"(?:<!--\s*invalid:\s*(?P<code>[\w-]+)\s*-->\s*\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def yaml_blocks(text: str) -> list[tuple[str | None, str, int]]:
    """``(expected error code or None, body, line)`` for each ```yaml block that is a whole config."""
    blocks = []
    for m in _BLOCK.finditer(text):
        if m["lang"] == "yaml" and re.search(r"^quantization_config:", m["body"], re.M):
            blocks.append((m["code"], m["body"], text.count("\n", 0, m.start("body")) + 1))
    return blocks


def python_blocks(text: str) -> list[str]:
    return [m["body"] for m in _BLOCK.finditer(text) if m["lang"] == "python"]


def _ids(blocks: list[tuple[str | None, str, int]]) -> list[str]:
    return [f"line{line}-{code or 'valid'}" for code, _, line in blocks]


_CONFIG_BLOCKS = yaml_blocks(CONFIG_LANGUAGE.read_text())


def test_the_page_has_valid_and_invalid_examples():
    codes = [code for code, _, _ in _CONFIG_BLOCKS]
    assert codes.count(None) >= 8
    assert {"cross-field", "mixed-tensor-keys", "unknown-key"} <= set(codes)


@pytest.mark.parametrize(("code", "body", "line"), _CONFIG_BLOCKS, ids=_ids(_CONFIG_BLOCKS))
def test_config_example(code, body, line):
    where = f"{CONFIG_LANGUAGE.name}:{line}"
    if code is None:
        try:
            load_config(body, name=where)
        except ConfigError as e:
            pytest.fail(f"documented as valid but does not load:\n{e}")
    else:
        with pytest.raises(ConfigError) as info:
            load_config(body, name=where)
        found = {d.code for d in info.value.diagnostics if d.level == "error"}
        assert code in found, f"{where}: documented as `{code}`, got {sorted(found)}"


def test_python_example_runs(tmp_path, monkeypatch):
    (block,) = python_blocks(CONFIG_LANGUAGE.read_text())
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my.yaml").write_text("quantization_config: {}\n")
    namespace: dict = {}
    exec(compile(block, str(CONFIG_LANGUAGE), "exec"), namespace)
    assert namespace["same"] == namespace["loaded"].config
    assert namespace["only_linear"].global_config is None


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # links in code are not links
    return [t for t in _LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {_anchor(h) for h in re.findall(r"^#+\s+(.*)$", text, flags=re.M)}


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in relative_links(page):
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target} (no such heading)")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_relative_links_resolve(page):
    assert broken_links(page) == []


def test_link_check_can_fail(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# A heading\n")
    page.write_text(
        "[ok](there.md) [ok](there.md#a-heading) [web](https://example.com) [gone](missing.md) "
        "[bad anchor](there.md#nope)\n```\n[in code](ignored.md)\n```\n"
    )
    assert broken_links(page) == ["missing.md (no such file)", "there.md#nope (no such heading)"]


def test_example_check_can_fail():
    text = (
        "```yaml\nquantization_config:\n  global_config: {dtyp: 1}\n```\n"
        "<!-- invalid: cross-field -->\n```yaml\nquantization_config: {}\n```\n"
        "```yaml\nquantization_spec: {}\n```\n"
    )
    (bad_valid, line1), (good_invalid, line2) = [(b, code) for code, b, _ in yaml_blocks(text)]
    assert line1 is None and line2 == "cross-field"
    with pytest.raises(ConfigError):
        load_config(bad_valid)
    load_config(good_invalid)  # loads, so the documented-invalid check would fail on it


def test_readme_points_inside_the_package():
    readme = (ROOT / "README.md").read_text()
    assert "SPEC.md" not in readme
    assert "docs/config-language.md" in readme and "docs/architecture.md" in readme
