"""flask commands: users, clients, keys, outbox, maintenance, and the
development set-up."""

from app.cli.clients import clients_cli
from app.cli.devsetup import dev_setup_command
from app.cli.keys import keys_cli
from app.cli.maintenance import maintenance_cli
from app.cli.outbox import outbox_cli
from app.cli.security import security_cli
from app.cli.users import users_cli
from app.unit_of_work import as_unit_of_work


def register_cli(app):
    """Add the commands, each one unit of work (app/unit_of_work.py)."""
    for command in (
        users_cli,
        clients_cli,
        keys_cli,
        maintenance_cli,
        outbox_cli,
        security_cli,
        dev_setup_command,
    ):
        as_unit_of_work(command)
    app.cli.add_command(users_cli)
    app.cli.add_command(clients_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(maintenance_cli)
    app.cli.add_command(outbox_cli)
    app.cli.add_command(security_cli)
    app.cli.add_command(dev_setup_command)
