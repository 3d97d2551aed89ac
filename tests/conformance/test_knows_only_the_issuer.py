"""The conformance suite's promise, kept by a test: no path of Latchkey's
URL map is written in tests/conformance; the relying party finds every
endpoint through discovery and the person follows links."""

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
# A quoted string (Python or JavaScript) that starts with a slash.
QUOTED_PATH = re.compile(r"""["'`](/[^"'`\s?]*)""")


def _latchkey_paths(app) -> set[str]:
    """Each rule's fixed part, up to its first variable."""
    paths = set()
    for rule in app.url_map.iter_rules():
        fixed = rule.rule.split("<")[0].rstrip("/")
        if fixed:
            paths.add(fixed)
    return paths


def test_no_latchkey_path_is_written_in_the_suite(app):
    latchkey = _latchkey_paths(app)
    assert len(latchkey) > 20  # the whole URL map, every blueprint
    sources = [*HERE.glob("*.py"), *HERE.glob("*.mjs")]
    assert HERE / "rp.mjs" in sources
    written_paths = 0
    for source in sources:
        for written in QUOTED_PATH.findall(source.read_text()):
            path = written.rstrip("/")
            hits = [p for p in latchkey if path == p or path.startswith(p + "/")]
            assert not hits, f"{source.name} writes Latchkey's path {written}"
            written_paths += 1
    assert written_paths > 10  # the RP's own routes were seen and checked
