from pathlib import Path

from runtime.cli import main
from services.reporting.app import create_app
from services.reporting.models import SCHEMA
from services.reporting.rebuild import rebuild
from services.reporting.settings import ReportingSettings

if __name__ == "__main__":
    main(create_app, ReportingSettings, Path(__file__).parent / "migrations", SCHEMA, {"rebuild": rebuild})
