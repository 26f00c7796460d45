from pathlib import Path

from runtime import crypto
from runtime.cli import main
from services.intake.app import create_app
from services.intake.models import SCHEMA, metadata
from services.intake.settings import IntakeSettings


def reencrypt_pii(settings: IntakeSettings) -> None:
    """Rewrite every ciphertext not under the primary key (after prepending a new key)."""
    crypto.configure(settings)
    crypto.reencrypt_command(settings.database_url, crypto.encrypted_columns(metadata))


if __name__ == "__main__":
    main(create_app, IntakeSettings, Path(__file__).parent / "migrations", SCHEMA, {"reencrypt-pii": reencrypt_pii})
