"""Unbound extension objects, bound to an app in create_app."""

from typing import TYPE_CHECKING, Any

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import CursorResult, MetaData, Result

# Named constraints so that Alembic migrations are the same on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
if TYPE_CHECKING:
    from flask_sqlalchemy.model import Model as _FlaskModel
    from sqlalchemy.orm import DeclarativeBase

    class Model(_FlaskModel, DeclarativeBase):
        """What db.Model is: a declarative base (keyword constructor, mapped
        columns) with Flask-SQLAlchemy's Model mixed in. Flask-SQLAlchemy
        makes it at run time, which a type checker cannot use as a base
        class (mypy #8603, flask-sqlalchemy #1327)."""

else:
    Model = db.Model  # the base class of every table in app/models/
migrate = Migrate()
csrf = CSRFProtect()
# Storage (Redis or memory) comes from LATCHKEY_REDIS_URL in create_app.
limiter = Limiter(key_func=get_remote_address)


def without_transaction() -> None:
    """Run the rest of this request's statements in autocommit: for a
    request that only reads (introspection), a transaction is two extra
    round trips to PostgreSQL (BEGIN and ROLLBACK or COMMIT) and buys
    nothing, since each read is one statement.
    Call it before the request's first statement; the pool restores the
    connection's isolation level when the request gives it back.

    Not on SQLite: Python's sqlite3 opens a transaction only before a
    statement that writes (its legacy transaction control), so reads run
    outside one already, and switching the connection to AUTOCOMMIT and
    back would cost two PRAGMA statements per request (about 10% of an
    introspection's CPU, bench/inproc.py).
    """
    if db.engine.dialect.name == "sqlite":
        return
    if not db.session().in_transaction():
        db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def rowcount(result: Result[Any]) -> int:
    """How many rows the UPDATE or DELETE that gave ``result`` matched: the
    count every conditional claim ("of two racing requests one wins") reads.

    Session.execute() is typed as returning Result; for a DML statement it
    is a CursorResult, the kind that has a row count. Raises TypeError for
    any other result, whose count would mean nothing.
    """
    if not isinstance(result, CursorResult):
        raise TypeError(f"no row count in a {type(result).__name__}")
    return result.rowcount
