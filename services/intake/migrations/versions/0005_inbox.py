"""inbox: intake consumes referral events (a case follows its referrals)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 22:20:00.000000
"""
from runtime.migration_ops import create_inbox_v1, drop_inbox_v1

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_inbox_v1("intake")


def downgrade() -> None:
    drop_inbox_v1("intake")
