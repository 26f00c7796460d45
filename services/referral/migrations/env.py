from runtime.migrations import run_env
from services.referral.models import metadata

run_env(metadata)
