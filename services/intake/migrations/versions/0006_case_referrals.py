"""case_referrals: a summary of each referral of a case, written from referral's events

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('case_referrals',
    sa.Column('referral_id', sa.UUID(), nullable=False),
    sa.Column('case_id', sa.UUID(), nullable=False),
    sa.Column('agency_unit_id', sa.UUID(), nullable=False),
    sa.Column('agency_unit_name', sa.String(length=300), nullable=True),
    sa.Column('agency_kind', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('decline_reason', sa.String(length=30), nullable=True),
    sa.Column('outcomes', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"),
              nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('referral_id'),
    schema='intake'
    )
    op.create_index(op.f('ix_intake_case_referrals_case_id'), 'case_referrals', ['case_id'], unique=False,
                    schema='intake')


def downgrade() -> None:
    op.drop_index(op.f('ix_intake_case_referrals_case_id'), table_name='case_referrals', schema='intake')
    op.drop_table('case_referrals', schema='intake')
