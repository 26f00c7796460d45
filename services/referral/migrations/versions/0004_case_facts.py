"""the latest facts of each case (a declined referral is matched again with them), and an index for
an agency's inbox

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 10:00:00.000000
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

SCHEMA = 'referral'


def upgrade() -> None:
    op.create_table('case_facts',
                    sa.Column('case_id', sa.UUID(), nullable=False),
                    sa.Column('version', sa.Integer(), nullable=False),
                    sa.Column('facts', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
                    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
                    sa.PrimaryKeyConstraint('case_id'),
                    schema=SCHEMA)
    op.create_index('ix_referrals_unit_created', 'referrals',
                    ['agency_unit_id', sa.text('created_at DESC'), sa.text('id DESC')], unique=False, schema=SCHEMA)


def downgrade() -> None:
    op.drop_index('ix_referrals_unit_created', table_name='referrals', schema=SCHEMA)
    op.drop_table('case_facts', schema=SCHEMA)
