"""Cases with encrypted free text, and the outbox.

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 19:26:32.133428
"""
import sqlalchemy as sa
from alembic import op

from runtime.migration_ops import create_outbox_v1, drop_outbox_v1

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = 'intake'


def upgrade() -> None:
    create_outbox_v1(SCHEMA)
    op.execute(sa.schema.CreateSequence(sa.Sequence('case_number_seq', schema='intake')))
    op.create_table('cases',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('case_number', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('province_code', sa.String(length=2), nullable=False),
    sa.Column('commune_code', sa.String(length=5), nullable=True),
    sa.Column('immediate_danger', sa.Boolean(), nullable=False),
    sa.Column('child_victim', sa.Boolean(), nullable=False),
    sa.Column('urgency', sa.String(length=20), nullable=False),
    sa.Column('urgency_floor', sa.String(length=20), nullable=False),
    sa.Column('urgency_reason', sa.LargeBinary(), nullable=True),
    sa.Column('narrative', sa.LargeBinary(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=100), nullable=True),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('case_number'),
    sa.UniqueConstraint('idempotency_key'),
    schema='intake'
    )
    op.create_index(op.f('ix_intake_cases_province_code'), 'cases', ['province_code'], unique=False, schema='intake')


def downgrade() -> None:
    drop_outbox_v1(SCHEMA)
    op.drop_index(op.f('ix_intake_cases_province_code'), table_name='cases', schema='intake')
    op.drop_table('cases', schema='intake')
    op.execute(sa.schema.DropSequence(sa.Sequence('case_number_seq', schema='intake')))
