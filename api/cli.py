"""The `devicecloud` command."""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from core.settings import DATA_DIR, get_settings
from models import db
from simulator import cli as simulator_cli

DEMO_EMAIL = "demo@devicecloud.example"
DEMO_PASSWORD = "demo-password"  # noqa: S105 - a published development login, never in production
DEMO_DEVICES = DATA_DIR / "demo-devices.csv"


async def _with_database(work: Callable[[], Awaitable[None]]) -> None:
    await db.connect(get_settings().database_url)
    try:
        await work()
    finally:
        await db.disconnect()


def cmd_migrate(args: argparse.Namespace) -> None:
    async def run() -> None:
        await db.migrate(get_settings().database_url)
        await db.disconnect()

    asyncio.run(run())
    print("Database is up to date.")


def cmd_makemigrations(args: argparse.Namespace) -> None:
    from tortoise.cli import cli as tortoise_cli

    ctx = tortoise_cli.CLIContext(config=None, config_file=None)
    ctx.config = "models.db.TORTOISE_ORM"
    asyncio.run(tortoise_cli.makemigrations(ctx, (), empty=False, name=args.name))


def cmd_seed(args: argparse.Namespace) -> None:
    from auth import accounts
    from fleet.demo import seed_demo_fleet
    from models.accounts import User

    settings = get_settings()

    async def run() -> None:
        if not await User.exists():
            await accounts.sign_up(DEMO_EMAIL, DEMO_PASSWORD, email_verified=True)
            print(f"Seeded the demo account {DEMO_EMAIL} / {DEMO_PASSWORD}")
        elif not await User.exists(email=DEMO_EMAIL):
            print("The database already has accounts; nothing seeded.")
            return
        fleet = await seed_demo_fleet(DEMO_EMAIL, DEMO_DEVICES)
        print(
            f"Demo fleet: product {fleet.product.id} ({fleet.product.name}) with "
            f"{len(fleet.devices)} devices; their credentials are in {fleet.csv_path}."
        )

    if not settings.development:
        sys.exit("Refusing to seed a demo account when ENVIRONMENT=production.")
    asyncio.run(_with_database(run))


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    settings = get_settings()
    if args.workers > 1 and not settings.broker_url:
        raise SystemExit(
            "--workers above 1 needs BROKER_URL=redis://…: with the in-process broker, live "
            "events and function calls would not cross between the worker processes."
        )
    if settings.development:
        print(
            f"\n  {settings.platform_name} is starting on http://{args.host}:{args.port}\n"
            f"  GraphiQL:  http://{args.host}:{args.port}/graphql\n"
            f"  Demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}\n"
            f"  Get a token:\n"
            f"    curl -s http://{args.host}:{args.port}/oauth/token -d grant_type=password \\\n"
            f"      -d client_id=devicecloud -d username={DEMO_EMAIL} \\\n"
            f"      -d password={DEMO_PASSWORD}\n",
            flush=True,
        )
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=True,
        log_config=None,
    )


def cmd_export_schema(args: argparse.Namespace) -> None:
    from api.graphql.schema import SCHEMA_FILE, export_sdl

    sdl = export_sdl(get_settings())
    if args.output == "-":
        sys.stdout.write(sdl)
    else:
        target = args.output or SCHEMA_FILE
        with open(target, "w") as handle:
            handle.write(sdl)
        print(f"Wrote {target}")


def cmd_create_client(args: argparse.Namespace) -> None:
    from auth.clients import create_service_client

    async def run() -> None:
        client, secret = await create_service_client(args.name, first_party=args.first_party)
        print(
            f"client_id={client.client_id}\nclient_secret={secret}\n"
            "The secret is shown only now; store it safely."
        )

    asyncio.run(_with_database(run))


def cmd_rotate_signing_key(args: argparse.Namespace) -> None:
    from auth import signing_keys

    settings = get_settings()

    async def run() -> None:
        new, old = await signing_keys.rotate(settings, withdraw=args.withdraw)
        print(f"ID tokens are signed with the new key {new.kid} from now on.")
        if old is not None and args.withdraw:
            print(f"The key {old.kid} no longer signs and is withdrawn from the JWKS: the ID "
                  "tokens it signed no longer verify.")
        elif old is not None:
            print(f"The key {old.kid} no longer signs; it stays in the JWKS for "
                  f"{settings.signing_key_overlap} seconds, so the ID tokens it signed stay "
                  "verifiable until they expire.")

    asyncio.run(_with_database(run))


def cmd_devices_provision(args: argparse.Namespace) -> None:
    from core.errors import DomainError
    from fleet.provisioning import provision_devices

    out = Path(args.out)
    try:
        # Opened before any device exists, so an existing file is never overwritten and a
        # file that cannot be written costs nothing.
        handle = out.open("x", newline="")
    except FileExistsError:
        sys.exit(f"{out} exists; refusing to overwrite it (its secrets may be the only copy).")
    except OSError as error:
        sys.exit(f"Cannot write {out}: {error.strerror}.")

    async def run() -> None:
        with handle:
            rows = await provision_devices(args.count, args.platform)
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(("device_id", "secret"))
            writer.writerows(rows)

    try:
        asyncio.run(_with_database(run))
    except DomainError as error:
        out.unlink()
        sys.exit(error.message)
    except BaseException:
        out.unlink()
        raise
    print(
        f"Provisioned {args.count} {args.platform.strip()} devices; wrote their IDs and "
        f"secrets to {out}.\nThe secrets are stored only as hashes: keep this file safe."
    )


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="devicecloud", description="Device Cloud: run and manage the service."
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the API over HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(run=cmd_serve)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(run=cmd_migrate)
    commands.add_parser(
        "seed", help="create the demo account and demo fleet in a development database"
    ).set_defaults(run=cmd_seed)

    export = commands.add_parser("export-schema", help="write the GraphQL schema (SDL)")
    export.add_argument(
        "--output", help="file to write, '-' for standard output (default: schema.graphql)"
    )
    export.set_defaults(run=cmd_export_schema)

    make = commands.add_parser("makemigrations", help="write a migration for model changes")
    make.add_argument("--name", help="a short name for the migration")
    make.set_defaults(run=cmd_makemigrations)

    clients = commands.add_parser(
        "create-client", help="create a confidential client for client_credentials"
    )
    clients.add_argument("--name", required=True)
    clients.add_argument(
        "--first-party",
        action="store_true",
        help="may introspect every token (for the operator's own services)",
    )
    clients.set_defaults(run=cmd_create_client)

    rotation = commands.add_parser(
        "rotate-signing-key", help="sign ID tokens with a new key from now on"
    )
    rotation.add_argument(
        "--withdraw",
        action="store_true",
        help="also remove the replaced key from the JWKS at once (a leaked key): the ID "
        "tokens it signed stop verifying",
    )
    rotation.set_defaults(run=cmd_rotate_signing_key)

    devices = commands.add_parser("devices", help="manage the device registry")
    device_commands = devices.add_subparsers(
        dest="devices_command", required=True, metavar="COMMAND"
    )
    provision = device_commands.add_parser(
        "provision", help="create devices with secrets and write device_id,secret rows"
    )
    provision.add_argument("--count", type=int, required=True, help="how many (1 to 1,000,000)")
    provision.add_argument("--platform", required=True, help="the hardware platform, e.g. Photon")
    provision.add_argument("--out", required=True, help="the CSV file to create")
    provision.set_defaults(run=cmd_devices_provision)

    simulate = commands.add_parser(
        "simulate", help="connect simulated devices (the reference device client)"
    )
    simulator_cli.add_arguments(simulate)
    simulate.set_defaults(run=simulator_cli.run_from_args)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
