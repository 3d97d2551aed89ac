"""Unbound extension objects, bound to an app in create_app."""

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData

# Named constraints so that Alembic migrations are the same on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
migrate = Migrate()
csrf = CSRFProtect()
# Storage (Redis or memory) comes from LATCHKEY_REDIS_URL in create_app.
limiter = Limiter(key_func=get_remote_address)


def without_transaction() -> None:
    """Run the rest of this request's statements in autocommit: for a
    request that only reads (introspection, a client_credentials grant),
    a transaction is two extra round trips to PostgreSQL (BEGIN and
    ROLLBACK or COMMIT) and buys nothing, since each read is one statement.
    Call it before the request's first statement; the pool restores the
    connection's isolation level when the request gives it back."""
    if not db.session().in_transaction():
        db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
