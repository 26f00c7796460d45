"""Projections for the analyst API: contacts rollup, cases, victims, referrals, outcomes, notifications,
positions and the rebuild generation. The first aggregates go: the new consumer group replays every topic.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

S = 'reporting'
TEXTS = postgresql.ARRAY(sa.String(40))


def upgrade() -> None:
    for old in ('cases_by_province', 'referred_cases', 'contacts_by_type'):
        op.drop_table(old, schema=S)
    op.execute(f'TRUNCATE {S}.inbox')
    op.create_table(
        'contacts_daily',
        sa.Column('day', sa.Date, primary_key=True),
        sa.Column('channel', sa.String(20), primary_key=True),
        sa.Column('contact_type', sa.String(30), primary_key=True),
        sa.Column('province_code', sa.String(7), primary_key=True),
        sa.Column('caller_role', sa.String(30), primary_key=True),
        sa.Column('contacts', sa.Integer, nullable=False),
        sa.Column('duration_s', sa.BigInteger, nullable=False, server_default='0'),
        schema=S)
    op.create_table(
        'cases',
        sa.Column('case_id', sa.UUID, primary_key=True),
        sa.Column('reported', sa.Boolean, nullable=False, server_default='false'),
        sa.Column('facts_version', sa.Integer, nullable=False, server_default='0'),
        sa.Column('status_version', sa.Integer, nullable=False, server_default='0'),
        sa.Column('reported_at', sa.DateTime(timezone=True)),
        sa.Column('day', sa.Date),
        sa.Column('channel', sa.String(20)),
        sa.Column('province_code', sa.String(2)),
        sa.Column('urgency', sa.String(20)),
        sa.Column('status', sa.String(20), nullable=False, server_default='open'),
        sa.Column('outcome', sa.String(30)),
        sa.Column('status_changed_at', sa.DateTime(timezone=True)),
        sa.Column('exploitation', TEXTS, nullable=False, server_default='{}'),
        sa.Column('child_involved', sa.Boolean, nullable=False, server_default='false'),
        sa.Column('cross_border', sa.Boolean, nullable=False, server_default='false'),
        sa.Column('at_sea', sa.Boolean, nullable=False, server_default='false'),
        sa.Column('abroad_country', sa.String(2)),
        sa.Column('destination_country', sa.String(2)),
        sa.Column('means_of_control', TEXTS, nullable=False, server_default='{}'),
        sa.Column('recruitment_channel', sa.String(30)),
        sa.Column('merged', sa.Boolean, nullable=False, server_default='false'),
        sa.Column('first_referred_at', sa.DateTime(timezone=True)),
        schema=S)
    op.create_index('ix_cases_day', 'cases', ['day'], schema=S)
    op.create_table(
        'victims',
        sa.Column('case_id', sa.UUID, primary_key=True),
        sa.Column('seq', sa.SmallInteger, primary_key=True),
        sa.Column('sex', sa.String(10), nullable=False),
        sa.Column('age_band', sa.String(10), nullable=False),
        sa.Column('is_child', sa.Boolean, nullable=False),
        sa.Column('nationality', sa.String(2)),
        sa.Column('needs', postgresql.ARRAY(sa.String(30)), nullable=False, server_default='{}'),
        schema=S)
    op.create_table(
        'referrals',
        sa.Column('referral_id', sa.UUID, primary_key=True),
        sa.Column('case_id', sa.UUID, nullable=False),
        sa.Column('created', sa.Boolean, nullable=False, server_default='false'),
        sa.Column('created_at', sa.DateTime(timezone=True)),
        sa.Column('day', sa.Date),
        sa.Column('agency_kind', sa.String(40)),
        sa.Column('agency_level', sa.String(20)),
        sa.Column('province_code', sa.String(2)),
        sa.Column('urgency', sa.String(20)),
        sa.Column('cause', sa.String(20)),
        sa.Column('acknowledge_by', sa.DateTime(timezone=True)),
        sa.Column('status', sa.String(20), nullable=False, server_default='created'),
        sa.Column('status_rank', sa.SmallInteger, nullable=False, server_default='0'),
        sa.Column('first_response_at', sa.DateTime(timezone=True)),
        sa.Column('decline_reason', sa.String(30)),
        sa.Column('reminded', sa.Boolean, nullable=False, server_default='false'),
        sa.Column('escalated_at', sa.DateTime(timezone=True)),
        sa.Column('escalated_to_level', sa.String(20)),
        schema=S)
    op.create_index('ix_referrals_case', 'referrals', ['case_id'], schema=S)
    op.create_index('ix_referrals_day', 'referrals', ['day'], schema=S)
    op.create_table(
        'outcomes',
        sa.Column('event_id', sa.UUID, primary_key=True),
        sa.Column('referral_id', sa.UUID, nullable=False),
        sa.Column('case_id', sa.UUID, nullable=False),
        sa.Column('agency_kind', sa.String(40), nullable=False),
        sa.Column('province_code', sa.String(2), nullable=False),
        sa.Column('outcome', sa.String(30), nullable=False),
        sa.Column('victims', sa.Integer),
        sa.Column('services', postgresql.ARRAY(sa.String(30)), nullable=False, server_default='{}'),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('day', sa.Date, nullable=False),
        schema=S)
    op.create_index('ix_outcomes_case', 'outcomes', ['case_id'], schema=S)
    op.create_table(
        'notifications',
        sa.Column('notification_id', sa.UUID, primary_key=True),
        sa.Column('referral_id', sa.UUID, nullable=False),
        sa.Column('case_id', sa.UUID, nullable=False),
        sa.Column('channel', sa.String(10), nullable=False),
        sa.Column('kind', sa.String(40)),
        sa.Column('provider', sa.String(40)),
        sa.Column('status', sa.String(20), nullable=False),
        sa.Column('status_rank', sa.SmallInteger, nullable=False),
        sa.Column('attempts', sa.Integer, nullable=False, server_default='0'),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('day', sa.Date, nullable=False),
        sa.Column('delivered_at', sa.DateTime(timezone=True)),
        schema=S)
    op.create_table(
        'positions',
        sa.Column('topic', sa.String(200), primary_key=True),
        sa.Column('partition', sa.Integer, primary_key=True),
        sa.Column('next_offset', sa.BigInteger, nullable=False),
        sa.Column('event_time', sa.DateTime(timezone=True)),
        sa.Column('applied_at', sa.DateTime(timezone=True), nullable=False, server_default=sa.text('now()')),
        schema=S)
    op.create_table(
        'projection_state',
        sa.Column('id', sa.SmallInteger, primary_key=True, server_default='1'),
        sa.Column('generation', sa.Integer, nullable=False, server_default='1'),
        sa.Column('rebuild_started_at', sa.DateTime(timezone=True)),
        sa.Column('rebuild_requested_by', sa.String(100)),
        sa.CheckConstraint('id = 1', name='one_row'),
        schema=S)
    op.execute(f'INSERT INTO {S}.projection_state (id, generation) VALUES (1, 1)')
    op.create_table(
        'audit_log',
        sa.Column('id', sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False, server_default=sa.text('now()')),
        sa.Column('subject', sa.String(200), nullable=False),
        sa.Column('action', sa.String(40), nullable=False),
        sa.Column('path', sa.String(300), nullable=False),
        sa.Column('query', sa.String(2000), nullable=False, server_default=''),
        schema=S)


def downgrade() -> None:
    for table in ('audit_log', 'projection_state', 'positions', 'notifications', 'outcomes', 'referrals',
                  'victims', 'cases', 'contacts_daily'):
        op.drop_table(table, schema=S)
    # The first aggregates come back empty: their consumer group replays the topics to fill them.
    op.create_table('cases_by_province', sa.Column('province_code', sa.String(2), primary_key=True),
                    sa.Column('cases_reported', sa.Integer, nullable=False, server_default='0'),
                    sa.Column('cases_referred', sa.Integer, nullable=False, server_default='0'),
                    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False, server_default=sa.text('now()')),
                    schema=S)
    op.create_table('referred_cases', sa.Column('case_id', sa.UUID, primary_key=True),
                    sa.Column('province_code', sa.String(2), nullable=False), schema=S)
    op.create_table('contacts_by_type', sa.Column('month', sa.String(7), primary_key=True),
                    sa.Column('contact_type', sa.String(30), primary_key=True),
                    sa.Column('channel', sa.String(20), primary_key=True),
                    sa.Column('contacts', sa.Integer, nullable=False, server_default='0'),
                    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False, server_default=sa.text('now()')),
                    schema=S)
