"""SMS, webhooks and templates: message kind, language, template version, priority, segments, provider,
retry deadline and source of each notification; templates; webhook endpoints and their secrets.

A notification is now unique per source event and target (a reminder to the same address is a new
message; a redelivered event is not).

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

SCHEMA = 'notify'


def _new_columns() -> tuple[sa.Column, ...]:
    return (
        sa.Column('source_id', sa.UUID(), nullable=True),
        sa.Column('kind', sa.String(length=40), server_default='referral.created', nullable=False),
        sa.Column('language', sa.String(length=5), server_default='vi', nullable=False),
        sa.Column('template_id', sa.UUID(), nullable=True),
        sa.Column('template_version', sa.Integer(), nullable=True),
        sa.Column('priority', sa.SmallInteger(), server_default='2', nullable=False),
        sa.Column('segments', sa.SmallInteger(), nullable=True),
        sa.Column('encoding', sa.String(length=8), nullable=True),
        sa.Column('provider', sa.String(length=40), nullable=True),
        sa.Column('webhook_endpoint_id', sa.UUID(), nullable=True),
        sa.Column('retry_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('resend_of', sa.UUID(), nullable=True),
    )


def upgrade() -> None:
    for column in _new_columns():
        op.add_column('notifications', column, schema=SCHEMA)
    op.drop_constraint('uq_notification_target', 'notifications', schema=SCHEMA, type_='unique')
    op.create_unique_constraint('uq_notification_source_target', 'notifications',
                                ['source_id', 'channel', 'recipient'], schema=SCHEMA)
    op.create_index('ix_notifications_due', 'notifications', ['priority', 'next_attempt_at'], schema=SCHEMA,
                    postgresql_where=sa.text("status IN ('created', 'sending')"))
    op.create_index('ix_notifications_provider_ref', 'notifications', ['provider', 'provider_ref'], schema=SCHEMA)
    op.create_table(
        'templates',
        sa.Column('id', sa.UUID(), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('channel', sa.String(length=10), nullable=False),
        sa.Column('language', sa.String(length=5), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('subject', sa.Text(), server_default='', nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('created_by', sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('kind', 'channel', 'language', 'version', name='uq_template_version'),
        schema=SCHEMA,
    )
    op.create_table(
        'webhook_endpoints',
        sa.Column('id', sa.UUID(), nullable=False),
        sa.Column('agency_unit_id', sa.UUID(), nullable=False),
        sa.Column('url', sa.String(length=2000), nullable=False),
        sa.Column('description', sa.String(length=500), server_default='', nullable=False),
        sa.Column('active', sa.Boolean(), server_default='true', nullable=False),
        sa.Column('version', sa.Integer(), server_default='1', nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        schema=SCHEMA,
    )
    op.create_index(op.f('ix_notify_webhook_endpoints_agency_unit_id'), 'webhook_endpoints', ['agency_unit_id'],
                    schema=SCHEMA)
    op.create_table(
        'webhook_secrets',
        sa.Column('id', sa.UUID(), nullable=False),
        sa.Column('endpoint_id', sa.UUID(), nullable=False),
        sa.Column('secret', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['endpoint_id'], [f'{SCHEMA}.webhook_endpoints.id']),
        sa.PrimaryKeyConstraint('id'),
        schema=SCHEMA,
    )
    op.create_index(op.f('ix_notify_webhook_secrets_endpoint_id'), 'webhook_secrets', ['endpoint_id'],
                    schema=SCHEMA)


def downgrade() -> None:
    op.drop_table('webhook_secrets', schema=SCHEMA)
    op.drop_table('webhook_endpoints', schema=SCHEMA)
    op.drop_table('templates', schema=SCHEMA)
    op.drop_index('ix_notifications_provider_ref', 'notifications', schema=SCHEMA)
    op.drop_index('ix_notifications_due', 'notifications', schema=SCHEMA)
    op.drop_constraint('uq_notification_source_target', 'notifications', schema=SCHEMA, type_='unique')
    op.create_unique_constraint('uq_notification_target', 'notifications', ['referral_id', 'channel', 'recipient'],
                                schema=SCHEMA)
    for column in reversed(_new_columns()):
        op.drop_column('notifications', column.name, schema=SCHEMA)
