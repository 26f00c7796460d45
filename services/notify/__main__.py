from pathlib import Path

from runtime.cli import main
from services.notify.app import create_app
from services.notify.models import SCHEMA
from services.notify.settings import NotifySettings

if __name__ == "__main__":
    main(create_app, NotifySettings, Path(__file__).parent / "migrations", SCHEMA)
