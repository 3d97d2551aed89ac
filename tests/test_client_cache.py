"""Clients kept in each process (app/clients/cache.py): used only while
client_registry.generation, renewed by triggers on any change to clients,
is the one they were read under."""

import pytest
import requests
from sqlalchemy import event, text

from app.clients.cache import ClientCache, registry_generation
from app.extensions import db
from app.security.opaque_tokens import hash_token, new_token

TIMEOUT = 10


def _generation(app) -> str | None:
    with app.app_context():
        return registry_generation()


def _sql(app, statement: str, **params) -> None:
    """An operator's SQL, committed on a connection of its own."""
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(text(statement), params)


def _grant(url: str, client_id: str, secret: str) -> requests.Response:
    return requests.post(
        url + "/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        timeout=TIMEOUT,
    )


def test_every_change_to_clients_renews_the_generation(app, factories):
    # The triggers of migration 0009, whoever writes: a later migration that
    # rebuilt the clients table without them would fail here.
    before = _generation(app)
    assert before is not None
    assert len(before) == 32
    made = factories.client(machine=True)
    inserted = _generation(app)
    assert inserted != before
    rename = "UPDATE clients SET name = 'Renamed' WHERE client_id = :c"
    _sql(app, rename, c=made.client_id)
    updated = _generation(app)
    assert updated != inserted
    _sql(app, "DELETE FROM clients WHERE client_id = :c", c=made.client_id)
    assert _generation(app) not in (before, inserted, updated)


def test_a_kept_client_is_not_read_again_while_nothing_changed(app, client, factories):
    made = factories.client(machine=True)
    auth = (made.client_id, made.secret)
    data = {"grant_type": "client_credentials"}
    assert client.post("/token", data=data, auth=auth).status_code == 200

    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert client.post("/token", data=data, auth=auth).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert not [s for s in statements if "FROM clients" in s], statements


def test_a_secret_changed_by_sql_counts_at_the_next_request(
    app, live_server, factories
):
    """panva/node-oidc-provider#143: clients cached by the provider kept
    what an admin process had since changed. Here the change is an
    operator's SQL in another process, against a live server's workers."""
    made = factories.client(machine=True)
    # Several requests, so that both of the server's workers keep the client.
    for _ in range(6):
        assert _grant(live_server.url, made.client_id, made.secret).status_code == 200
    new_secret = new_token()
    _sql(
        app,
        "UPDATE clients SET secret_hash = :h WHERE client_id = :c",
        h=hash_token(new_secret),
        c=made.client_id,
    )
    for _ in range(6):
        old = _grant(live_server.url, made.client_id, made.secret)
        assert old.status_code == 401, old.text
        assert old.json()["error"] == "invalid_client"
        assert _grant(live_server.url, made.client_id, new_secret).status_code == 200


def test_a_client_deleted_by_the_cli_stops_at_the_next_request(
    app, live_server, factories
):
    """camunda/camunda#44844: a client kept its cached access by using it
    often enough. Kept rows here have no lifetime that use could extend:
    the first request after the change is refused, however busy it was."""
    made = factories.client(machine=True)
    for _ in range(6):
        assert _grant(live_server.url, made.client_id, made.secret).status_code == 200
    result = app.test_cli_runner().invoke(
        args=["clients", "delete", made.client_id, "--yes"]
    )
    assert result.exit_code == 0, result.output
    for _ in range(6):
        answer = _grant(live_server.url, made.client_id, made.secret)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"] == "invalid_client"


def test_without_a_generation_every_lookup_reads_and_nothing_is_kept(app):
    reads: list[str] = []

    def load(client_id):
        reads.append(client_id)
        return {"client_id": client_id}

    cache = ClientCache(generation=lambda: None)
    assert cache.row("a", load) == {"client_id": "a"}
    assert cache.row("a", load) == {"client_id": "a"}
    assert reads == ["a", "a"]


def test_the_registry_row_missing_means_no_generation(app, client, factories):
    made = factories.client(machine=True)
    with app.app_context():
        kept = db.session.execute(text("SELECT generation FROM client_registry")).one()
    _sql(app, "DELETE FROM client_registry")
    try:
        assert _generation(app) is None
        # The grant still works: the client is read as it was before caching.
        answer = client.post(
            "/token",
            data={"grant_type": "client_credentials"},
            auth=(made.client_id, made.secret),
        )
        assert answer.status_code == 200, answer.text
    finally:
        _sql(
            app,
            "INSERT INTO client_registry (id, generation) VALUES (1, :g)",
            g=kept[0],
        )


def test_rows_are_kept_per_generation_and_only_for_clients_that_exist():
    generation = ["g1"]
    reads: list[str] = []

    def load(client_id):
        reads.append(client_id)
        return None if client_id.startswith("unknown") else {"client_id": client_id}

    cache = ClientCache(generation=lambda: generation[0], max_entries=3)
    cache.row("a", load)
    cache.row("a", load)
    assert reads == ["a"]
    generation[0] = "g2"
    cache.row("a", load)
    assert reads == ["a", "a"]
    # Unknown ids are read every time and never kept: nobody can fill it.
    for i in range(10):
        assert cache.row(f"unknown-{i}", load) is None
    assert len(cache._rows) == 1
    # At the bound, everything kept is forgotten rather than growing.
    cache.row("b", load)
    cache.row("c", load)
    cache.row("d", load)
    assert len(cache._rows) == 1


@pytest.mark.parametrize("field", ["scopes", "grant_types", "redirect_uris"])
def test_what_a_request_does_to_its_client_stays_its_own(app, factories, field):
    made = factories.client(machine=True)
    server = app.extensions["latchkey"].server
    with app.test_request_context("/token", method="POST"):
        first = server.query_client(made.client_id)
        getattr(first, field).append("changed")
        second = server.query_client(made.client_id)
        assert "changed" not in getattr(second, field)
        db.session.remove()


def test_a_request_holds_one_connection_at_a_time(app, client, factories):
    """docs/PRODUCTION.md sizes pools as one connection per thread: reading
    the generation must use the connection a request already holds
    (introspection takes its own before it authenticates), never a second
    one, which a pool sized to the threads would make it wait for."""
    service = factories.client(machine=True)
    rs = factories.client(machine=True, may_introspect=True)
    out = [0]
    most = [0]

    def checkout(*args):
        out[0] += 1
        most[0] = max(most[0], out[0])

    def checkin(*args):
        out[0] -= 1

    with app.app_context():
        engine = db.engine
    event.listen(engine, "checkout", checkout)
    event.listen(engine, "checkin", checkin)
    try:
        for _ in range(2):  # the first keeps the clients, the second uses them
            grant = client.post(
                "/token",
                data={"grant_type": "client_credentials"},
                auth=(service.client_id, service.secret),
            )
            assert grant.status_code == 200, grant.text
            token = grant.json["access_token"]
            answer = client.post(
                "/introspect", data={"token": token}, auth=(rs.client_id, rs.secret)
            )
            assert answer.status_code == 200, answer.text
            assert answer.json["active"] is True
            revoked = client.post(
                "/revoke",
                data={"token": token},
                auth=(service.client_id, service.secret),
            )
            assert revoked.status_code == 200, revoked.text
    finally:
        event.remove(engine, "checkout", checkout)
        event.remove(engine, "checkin", checkin)
    assert most[0] == 1
