"""referral lifecycle (acknowledged, accepted or declined, outcomes, closed), escalation and re-route
links, and the durable deadline timer

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 22:50:00.000000
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

SCHEMA = 'referral'
TIMESTAMPS = ('notified_at', 'acknowledged_at', 'accepted_at', 'declined_at', 'closed_at', 'due_at', 'reminded_at',
              'escalated_at')


def upgrade() -> None:
    add = lambda column: op.add_column('referrals', column, schema=SCHEMA)  # noqa: E731
    add(sa.Column('version', sa.Integer(), server_default='1', nullable=False))
    add(sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False))
    for name in TIMESTAMPS:
        add(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    add(sa.Column('decline_reason', sa.String(length=30), nullable=True))
    add(sa.Column('cause', sa.String(length=20), server_default='matched', nullable=False))
    add(sa.Column('previous_referral_id', sa.UUID(), nullable=True))
    add(sa.Column('due_step', sa.String(length=20), nullable=True))
    # Referrals made before this migration wait for acknowledgement like new ones.
    op.execute(f"UPDATE {SCHEMA}.referrals SET status = 'created' WHERE status = 'pending'")
    op.execute(f"UPDATE {SCHEMA}.referrals SET due_step = 'remind', due_at = acknowledge_by WHERE status = 'created'")
    op.create_index('ix_referrals_due', 'referrals', ['due_at'], unique=False, schema=SCHEMA,
                    postgresql_where=sa.text('due_at IS NOT NULL'))
    op.create_table('referral_outcomes',
                    sa.Column('id', sa.UUID(), nullable=False),
                    sa.Column('referral_id', sa.UUID(), nullable=False),
                    sa.Column('outcome', sa.String(length=30), nullable=False),
                    sa.Column('victims', sa.Integer(), nullable=True),
                    sa.Column('services', postgresql.ARRAY(sa.String(length=40)), server_default='{}',
                              nullable=False),
                    sa.Column('recorded_by', sa.String(length=200), nullable=False),
                    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
                    sa.ForeignKeyConstraint(['referral_id'], ['referral.referrals.id']),
                    sa.PrimaryKeyConstraint('id'),
                    schema=SCHEMA)
    op.create_index(op.f('ix_referral_referral_outcomes_referral_id'), 'referral_outcomes', ['referral_id'],
                    unique=False, schema=SCHEMA)


def downgrade() -> None:
    op.drop_index(op.f('ix_referral_referral_outcomes_referral_id'), table_name='referral_outcomes', schema=SCHEMA)
    op.drop_table('referral_outcomes', schema=SCHEMA)
    op.drop_index('ix_referrals_due', table_name='referrals', schema=SCHEMA)
    for name in ('due_step', 'previous_referral_id', 'cause', 'decline_reason', *TIMESTAMPS, 'updated_at',
                 'version'):
        op.drop_column('referrals', name, schema=SCHEMA)
