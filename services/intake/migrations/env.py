from runtime.migrations import run_env
from services.intake.models import metadata

run_env(metadata)
