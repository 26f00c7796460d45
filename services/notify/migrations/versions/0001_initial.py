"""Initial tables, inbox and outbox.

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 19:28:13.303088
"""
import sqlalchemy as sa
from alembic import op

from runtime.migration_ops import create_inbox_v1, create_outbox_v1, drop_inbox_v1, drop_outbox_v1
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = 'notify'


def upgrade() -> None:
    create_outbox_v1(SCHEMA)
    create_inbox_v1(SCHEMA)
    op.create_table('notifications',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('referral_id', sa.UUID(), nullable=False),
    sa.Column('case_id', sa.UUID(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('provider_code', sa.String(length=100), nullable=True),
    sa.Column('provider_ref', sa.String(length=200), nullable=True),
    sa.Column('trace', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('referral_id', 'channel', 'recipient', name='uq_notification_target'),
    schema='notify'
    )
    op.create_index(op.f('ix_notify_notifications_case_id'), 'notifications', ['case_id'], unique=False, schema='notify')
    op.create_index(op.f('ix_notify_notifications_referral_id'), 'notifications', ['referral_id'], unique=False, schema='notify')


def downgrade() -> None:
    drop_outbox_v1(SCHEMA)
    drop_inbox_v1(SCHEMA)
    op.drop_index(op.f('ix_notify_notifications_referral_id'), table_name='notifications', schema='notify')
    op.drop_index(op.f('ix_notify_notifications_case_id'), table_name='notifications', schema='notify')
    op.drop_table('notifications', schema='notify')
