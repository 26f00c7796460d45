"""Agency directory, referrals, inbox and outbox.

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 19:27:12.365622
"""
import sqlalchemy as sa
from alembic import op

from runtime.migration_ops import create_inbox_v1, create_outbox_v1, drop_inbox_v1, drop_outbox_v1

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = 'referral'


def upgrade() -> None:
    create_outbox_v1(SCHEMA)
    create_inbox_v1(SCHEMA)
    op.create_table('agency_units',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('province_code', sa.String(length=2), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('sms', sa.String(length=32), nullable=True),
    sa.Column('active', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code'),
    schema='referral'
    )
    op.create_index(op.f('ix_referral_agency_units_province_code'), 'agency_units', ['province_code'], unique=False, schema='referral')
    op.create_table('referrals',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('case_id', sa.UUID(), nullable=False),
    sa.Column('case_number', sa.String(length=32), nullable=False),
    sa.Column('agency_unit_id', sa.UUID(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('urgency', sa.String(length=20), nullable=False),
    sa.Column('province_code', sa.String(length=2), nullable=False),
    sa.Column('match_reason', sa.String(length=500), nullable=False),
    sa.Column('acknowledge_by', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['agency_unit_id'], ['referral.agency_units.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('case_id', 'agency_unit_id', name='uq_referral_case_unit'),
    schema='referral'
    )
    op.create_index(op.f('ix_referral_referrals_case_id'), 'referrals', ['case_id'], unique=False, schema='referral')


def downgrade() -> None:
    drop_outbox_v1(SCHEMA)
    drop_inbox_v1(SCHEMA)
    op.drop_index(op.f('ix_referral_referrals_case_id'), table_name='referrals', schema='referral')
    op.drop_table('referrals', schema='referral')
    op.drop_index(op.f('ix_referral_agency_units_province_code'), table_name='agency_units', schema='referral')
    op.drop_table('agency_units', schema='referral')
