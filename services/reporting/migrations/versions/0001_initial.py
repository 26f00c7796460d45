"""Initial tables, inbox and outbox.

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 19:28:13.879311
"""
import sqlalchemy as sa
from alembic import op

from runtime.migration_ops import create_inbox_v1, drop_inbox_v1


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = 'reporting'


def upgrade() -> None:
    create_inbox_v1(SCHEMA)
    op.create_table('cases_by_province',
    sa.Column('province_code', sa.String(length=2), nullable=False),
    sa.Column('cases_reported', sa.Integer(), server_default='0', nullable=False),
    sa.Column('cases_referred', sa.Integer(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('province_code'),
    schema='reporting'
    )
    op.create_table('referred_cases',
    sa.Column('case_id', sa.UUID(), nullable=False),
    sa.Column('province_code', sa.String(length=2), nullable=False),
    sa.PrimaryKeyConstraint('case_id'),
    schema='reporting'
    )


def downgrade() -> None:
    drop_inbox_v1(SCHEMA)
    op.drop_table('referred_cases', schema='reporting')
    op.drop_table('cases_by_province', schema='reporting')
