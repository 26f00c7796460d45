"""Agency directory, referrals, inbox and outbox.

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 19:27:12.365622
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
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
    op.create_table('inbox',
    sa.Column('consumer', sa.String(length=100), nullable=False),
    sa.Column('event_id', sa.UUID(), nullable=False),
    sa.Column('event_type', sa.String(length=200), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'event_id'),
    schema='referral'
    )
    op.create_table('outbox',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('topic', sa.String(length=200), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('type', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=True),
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('trace', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('seq'),
    schema='referral'
    )
    op.create_index('ix_outbox_published_at', 'outbox', ['published_at'], unique=False, schema='referral')
    op.create_index('ix_outbox_unpublished', 'outbox', ['seq'], unique=False, schema='referral', postgresql_where=sa.text('published_at IS NULL'))
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
    op.drop_index(op.f('ix_referral_referrals_case_id'), table_name='referrals', schema='referral')
    op.drop_table('referrals', schema='referral')
    op.drop_index('ix_outbox_unpublished', table_name='outbox', schema='referral', postgresql_where=sa.text('published_at IS NULL'))
    op.drop_index('ix_outbox_published_at', table_name='outbox', schema='referral')
    op.drop_table('outbox', schema='referral')
    op.drop_table('inbox', schema='referral')
    op.drop_index(op.f('ix_referral_agency_units_province_code'), table_name='agency_units', schema='referral')
    op.drop_table('agency_units', schema='referral')
