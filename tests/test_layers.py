"""The layer rules of docs/ARCHITECTURE.md that import-linter cannot state.

import-linter (`make lint`, [tool.importlinter] in pyproject.toml) checks
which package may import which. What it cannot see is a service reaching
for the request through Flask's context-local proxies: services take the
request's facts as arguments, so they are the same from a page, the CLI or
the outbox worker."""

import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"
SERVICE_PACKAGES = (
    "accounts",
    "apps",
    "clients",
    "cutoff",
    "devices",
    "events",
    "federation",
    "keys",
    "logout",
    "mail",
    "maintenance",
    "models",
    "outbox",
    "security",
)
REQUEST_PROXIES = {"request", "session", "g"}


def _request_proxies_imported(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module == "flask":
            found |= {alias.name for alias in node.names} & REQUEST_PROXIES
    return found


def test_services_never_read_the_request():
    offenders = {
        str(path.relative_to(APP.parent)): sorted(names)
        for package in SERVICE_PACKAGES
        for path in sorted((APP / package).rglob("*.py"))
        if (names := _request_proxies_imported(path))
    }
    assert offenders == {}


def test_every_package_is_placed_in_a_layer():
    """A new package of app/ must be given its place in the contract, or
    import-linter would not check it."""
    import tomllib

    config = tomllib.loads((APP.parent / "pyproject.toml").read_text())
    contract = config["tool"]["importlinter"]["contracts"][0]
    placed = {name.strip() for layer in contract["layers"] for name in layer.split("|")}
    packages = {
        path.stem if path.is_file() else path.name
        for path in APP.iterdir()
        if (path.is_dir() and (path / "__init__.py").exists())
        or (path.suffix == ".py" and path.stem not in ("__init__", "wsgi"))
    }
    assert packages - placed == set()
