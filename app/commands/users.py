"""`carehub user add|disable|enable`: staff logins, with the password never on the command
line. Changing a password or disabling a login ends its sessions and tokens at once
(docs/security.md, "Revocation")."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from services.web.users import Role

user_app = typer.Typer(help="Staff logins.", no_args_is_help=True)


@user_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[Role, typer.Option(help="staff, manager or admin.")] = Role.STAFF,
) -> None:
    """Create or update a login; the password is read from stdin or prompted for."""
    from carehub.settings import get_settings
    from services.web.users import UserError, UserStore

    if sys.stdin.isatty():
        password = getpass.getpass(f"Password for {name}: ")
        if getpass.getpass("Again: ") != password:
            typer.echo("error: the passwords differ", err=True)
            raise typer.Exit(2)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    store = UserStore(get_settings().db)
    try:
        created = store.upsert(name, password, role)
    except UserError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    finally:
        store.close()
    typer.echo(f"{'created' if created else 'updated'} {name} ({role.value})")


def _set_disabled(name: str, disabled: bool) -> None:
    from carehub.settings import get_settings
    from services.web.users import UserStore

    store = UserStore(get_settings().db)
    try:
        found = store.set_disabled(name, disabled)
    finally:
        store.close()
    if not found:
        typer.echo(f"error: no login {name!r}", err=True)
        raise typer.Exit(2)
    typer.echo(f"{'disabled' if disabled else 'enabled'} {name}")


@user_app.command("disable")
def disable(name: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Disable a login: it cannot log in, and its sessions and tokens stop working now."""
    _set_disabled(name, True)


@user_app.command("enable")
def enable(name: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Enable a disabled login again (with its old password; sessions from before stay ended)."""
    _set_disabled(name, False)


def register(app: typer.Typer) -> None:
    """Add `carehub user ...`."""
    app.add_typer(user_app, name="user")
