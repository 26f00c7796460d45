"""referral_deliveries: how each alert of a referral fared, so an undeliverable referral escalates at once

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 23:15:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('referral_deliveries',
                    sa.Column('notification_id', sa.UUID(), nullable=False),
                    sa.Column('referral_id', sa.UUID(), nullable=False),
                    sa.Column('channel', sa.String(length=20), nullable=False),
                    sa.Column('status', sa.String(length=30), nullable=False),
                    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
                    sa.PrimaryKeyConstraint('notification_id'),
                    schema='referral')
    op.create_index(op.f('ix_referral_referral_deliveries_referral_id'), 'referral_deliveries', ['referral_id'],
                    unique=False, schema='referral')


def downgrade() -> None:
    op.drop_index(op.f('ix_referral_referral_deliveries_referral_id'), table_name='referral_deliveries',
                  schema='referral')
    op.drop_table('referral_deliveries', schema='referral')
