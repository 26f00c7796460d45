"""cases by commune and time: the duplicate check on every new case

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 21:55:00.000000
"""
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_cases_commune_reported', 'cases', ['commune_code', 'reported_at'], unique=False,
                    schema='intake')


def downgrade() -> None:
    op.drop_index('ix_cases_commune_reported', table_name='cases', schema='intake')
