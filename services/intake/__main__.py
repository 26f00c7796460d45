from pathlib import Path

from runtime.cli import main
from services.intake.app import create_app
from services.intake.models import SCHEMA
from services.intake.settings import IntakeSettings

if __name__ == "__main__":
    main(create_app, IntakeSettings, Path(__file__).parent / "migrations", SCHEMA)
