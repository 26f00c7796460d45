from pathlib import Path

from runtime.cli import main
from services.referral.app import create_app
from services.referral.directory.seed import seed_command
from services.referral.models import SCHEMA
from services.referral.settings import ReferralSettings

if __name__ == "__main__":
    main(create_app, ReferralSettings, Path(__file__).parent / "migrations", SCHEMA, {"seed": seed_command})
