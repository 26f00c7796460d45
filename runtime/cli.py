"""`python -m services.<name> [serve|migrate|...]`: one entry point per service process."""
import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from runtime import migrations
from runtime.settings import ServiceSettings


def main(
    create_app: Callable[[], FastAPI],
    settings_cls: type[ServiceSettings],
    migrations_dir: Path,
    schema: str,
    extra_commands: dict[str, Callable[[ServiceSettings], None]] | None = None,
) -> None:
    extra = extra_commands or {}
    parser = argparse.ArgumentParser()
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate", *extra])
    args = parser.parse_args()
    # Migrating needs only the database: secrets such as PII keys stay with the serving process.
    settings = (ServiceSettings if args.command == "migrate" else settings_cls)()
    if args.command == "migrate":
        migrations.upgrade(migrations_dir, settings.session_database_url, schema)
        print(f"{schema}: migrated to head", file=sys.stderr)
    elif args.command in extra:
        extra[args.command](settings)
    else:
        app = create_app()
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
        )
        uvicorn.Server(config).run()
