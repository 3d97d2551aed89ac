"""Printing for commands: a table for people, --json for scripts."""

import json

import click


def emit(data, as_json: bool, human: str | None = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    elif human is not None:
        click.echo(human)
    elif isinstance(data, list):
        for item in data:
            click.echo("  ".join(f"{k}={v}" for k, v in item.items()))
    else:
        for key, value in data.items():
            click.echo(f"{key:32} {value}")
