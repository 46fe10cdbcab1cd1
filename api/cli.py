"""The `devicecloud` command."""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from billing.plans import Contract, Limits, PlanKind, Subscription
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


def _subscription(args: argparse.Namespace) -> Subscription | str:
    """The plan the `plan set` arguments name, or why they name none."""
    plan = PlanKind(args.plan)
    contract_given = args.devices is not None or args.data_operations is not None
    if plan is PlanKind.ENTERPRISE:
        if args.devices is None or args.data_operations is None:
            return "ENTERPRISE needs its contract's limits: --devices N --data-operations N."
        if args.blocks is not None:
            return "ENTERPRISE is by contract, not in blocks: leave out --blocks."
        try:
            limits = Limits(args.devices, args.data_operations)
        except ValueError as error:
            return str(error)
        return Subscription(plan, contract=Contract(
            limits, manufacturing_grace=args.manufacturing_grace))
    if contract_given or args.manufacturing_grace:
        return (f"{plan} has the catalog's limits: --devices, --data-operations and "
                "--manufacturing-grace are for ENTERPRISE.")
    try:
        return Subscription(plan, blocks=1 if args.blocks is None else args.blocks)
    except ValueError as error:
        return str(error)


def cmd_plan_set(args: argparse.Namespace) -> None:
    from billing import accounts, pauses
    from core.broker import create_broker
    from models.organizations import Organization

    subscription = _subscription(args)
    if isinstance(subscription, str):
        sys.exit(subscription)
    settings = get_settings()

    async def run() -> None:
        organization = await Organization.get_or_none(slug=args.organization)
        if organization is None:
            sys.exit(f"No organization has the slug {args.organization!r}.")
        done = await accounts.set_plan(organization.id, subscription)
        limits = subscription.limits
        price = subscription.monthly_price_cents
        blocks = "" if subscription.contract else (
            f", {subscription.blocks} block{'s' if subscription.blocks > 1 else ''}")
        print(f"{organization.slug} is on {subscription.plan}{blocks}: {limits.devices:,} "
              f"devices and {limits.data_operations:,} data operations a month"
              + (f", {price} cents a month" if price is not None else ", by contract")
              + (", with the manufacturing grace" if subscription.manufacturing_grace else "")
              + f"; the limits apply now, billed from {done.change.billed_from}.")
        if done.lifted_pause:
            broker = create_broker(settings.broker_url, settings.broker_channel_prefix)
            await broker.start()
            try:
                await pauses.changed(broker)
            finally:
                await broker.close()
            print("Its devices were paused; they are not any more.")

    asyncio.run(_with_database(run))


def cmd_usage_tick(args: argparse.Namespace) -> None:
    from api.app import OUTBOX
    from billing import scheduler
    from core import clock
    from core.broker import create_broker

    settings = get_settings()

    async def run() -> None:
        broker = create_broker(settings.broker_url, settings.broker_channel_prefix)
        await broker.start()
        try:
            done = await scheduler.tick(clock.now(), broker=broker, outbox=OUTBOX)
        finally:
            await broker.close()
        for line in done:
            print(line)
        print(f"{len(done)} thing{'' if len(done) == 1 else 's'} done.")

    asyncio.run(_with_database(run))


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

    plan = commands.add_parser("plan", help="organizations' plans (operators)")
    plan_commands = plan.add_subparsers(dest="plan_command", required=True, metavar="COMMAND")
    set_plan = plan_commands.add_parser(
        "set", help="put an organization on a plan: its limits apply at once, billed from "
        "the next period")
    set_plan.add_argument("organization", help="the organization's slug")
    set_plan.add_argument("plan", choices=["FREE", "BASIC", "ENTERPRISE"])
    set_plan.add_argument("--blocks", type=int, help="BASIC's blocks (default 1)")
    set_plan.add_argument("--devices", type=int, help="ENTERPRISE: the contract's devices")
    set_plan.add_argument("--data-operations", type=int,
                          help="ENTERPRISE: the contract's data operations a month")
    set_plan.add_argument("--manufacturing-grace", action="store_true",
                          help="ENTERPRISE: the contract includes the manufacturing grace")
    set_plan.set_defaults(run=cmd_plan_set)

    usage = commands.add_parser("usage", help="usage metering (operators)")
    usage_commands = usage.add_subparsers(dest="usage_command", required=True,
                                          metavar="COMMAND")
    usage_commands.add_parser(
        "tick", help="run the usage scheduler once (warnings, pauses, resumptions) and say "
        "what it did").set_defaults(run=cmd_usage_tick)

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
