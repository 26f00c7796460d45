from runtime.migrations import run_env
from services.reporting.models import metadata

run_env(metadata)
