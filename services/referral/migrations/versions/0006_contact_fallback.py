"""referrals.alerted and referral_deliveries.recipient: a failed alert moves on to the unit's next contact

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 09:00:00.000000
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: existing referrals keep NULL, "every contact was alerted" (before v1.1).
    op.add_column('referrals', sa.Column('alerted', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
                  schema='referral')
    op.add_column('referral_deliveries', sa.Column('recipient', sa.String(length=320), nullable=True),
                  schema='referral')


def downgrade() -> None:
    op.drop_column('referral_deliveries', 'recipient', schema='referral')
    op.drop_column('referrals', 'alerted', schema='referral')
