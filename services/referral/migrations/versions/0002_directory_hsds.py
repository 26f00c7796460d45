"""directory after Open Referral HSDS (levels, service areas, services, contacts, hours, status);
referrals keep their rule trace and the consent policy's answer

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 22:40:00.000000
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

SCHEMA = 'referral'
JSONB = postgresql.JSONB(astext_type=sa.Text())


def upgrade() -> None:
    add = lambda column: op.add_column('agency_units', column, schema=SCHEMA)  # noqa: E731
    add(sa.Column('level', sa.String(length=20), nullable=True))
    add(sa.Column('parent_code', sa.String(length=64), nullable=True))
    add(sa.Column('commune_code', sa.String(length=5), nullable=True))
    add(sa.Column('region', sa.String(length=20), nullable=True))
    add(sa.Column('country', sa.String(length=2), nullable=True))
    add(sa.Column('services', postgresql.ARRAY(sa.String(length=40)), server_default='{}', nullable=False))
    add(sa.Column('languages', postgresql.ARRAY(sa.String(length=10)), server_default='{vi}', nullable=False))
    add(sa.Column('opening_hours', JSONB, server_default=sa.text("'[]'::jsonb"), nullable=False))
    add(sa.Column('status', sa.String(length=20), server_default='active', nullable=False))
    add(sa.Column('last_verified', sa.Date(), nullable=True))
    add(sa.Column('contacts', JSONB, server_default=sa.text("'[]'::jsonb"), nullable=False))
    add(sa.Column('version', sa.Integer(), server_default='1', nullable=False))
    # Carry the first directory's rows over; the seed then fills in the rest.
    op.execute(f"""
        UPDATE {SCHEMA}.agency_units SET
            level = CASE WHEN kind = 'police_national' THEN 'national' ELSE 'province' END,
            status = CASE WHEN active THEN 'active' ELSE 'inactive' END,
            services = '{{law_enforcement}}',
            contacts = (SELECT coalesce(jsonb_agg(c), '[]'::jsonb) FROM (
                SELECT jsonb_build_object('channel', 'sms', 'address', sms, 'preference', 1,
                                          'duty_24_7', true) AS c WHERE sms IS NOT NULL
                UNION ALL
                SELECT jsonb_build_object('channel', 'email', 'address', email, 'preference', 2,
                                          'duty_24_7', false) WHERE email IS NOT NULL) AS cs)""")
    op.alter_column('agency_units', 'level', nullable=False, schema=SCHEMA)
    for old in ('email', 'sms', 'active'):
        op.drop_column('agency_units', old, schema=SCHEMA)
    op.create_table('directory_state',
                    sa.Column('id', sa.SmallInteger(), nullable=False),
                    sa.Column('version', sa.BigInteger(), nullable=False),
                    sa.PrimaryKeyConstraint('id'),
                    schema=SCHEMA)
    op.execute(f"INSERT INTO {SCHEMA}.directory_state (id, version) VALUES (1, 1)")
    op.add_column('referrals', sa.Column('rule_ids', postgresql.ARRAY(sa.String(length=60)), server_default='{}',
                                         nullable=False), schema=SCHEMA)
    op.add_column('referrals', sa.Column('trace', JSONB, server_default=sa.text("'[]'::jsonb"), nullable=False),
                  schema=SCHEMA)
    op.add_column('referrals', sa.Column('identity_shared', sa.Boolean(), server_default='false', nullable=False),
                  schema=SCHEMA)


def downgrade() -> None:
    for column in ('identity_shared', 'trace', 'rule_ids'):
        op.drop_column('referrals', column, schema=SCHEMA)
    op.drop_table('directory_state', schema=SCHEMA)
    op.add_column('agency_units', sa.Column('email', sa.String(length=320), nullable=True), schema=SCHEMA)
    op.add_column('agency_units', sa.Column('sms', sa.String(length=32), nullable=True), schema=SCHEMA)
    op.add_column('agency_units', sa.Column('active', sa.Boolean(), server_default='true', nullable=False),
                  schema=SCHEMA)
    op.execute(f"""
        UPDATE {SCHEMA}.agency_units SET active = (status = 'active'),
            email = (SELECT c->>'address' FROM jsonb_array_elements(contacts) c WHERE c->>'channel' = 'email' LIMIT 1),
            sms = (SELECT c->>'address' FROM jsonb_array_elements(contacts) c WHERE c->>'channel' = 'sms' LIMIT 1)""")
    for column in ('version', 'contacts', 'last_verified', 'status', 'opening_hours', 'languages', 'services',
                   'country', 'region', 'commune_code', 'parent_code', 'level'):
        op.drop_column('agency_units', column, schema=SCHEMA)
