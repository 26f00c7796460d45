"""A send's lease (a worker that died mid-send is reconciled, not resent) and the render context.

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

SCHEMA = 'notify'


def upgrade() -> None:
    op.add_column('notifications', sa.Column('leased_until', sa.DateTime(timezone=True), nullable=True),
                  schema=SCHEMA)
    op.add_column('notifications', sa.Column('context', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
                  schema=SCHEMA)


def downgrade() -> None:
    op.drop_column('notifications', 'context', schema=SCHEMA)
    op.drop_column('notifications', 'leased_until', schema=SCHEMA)
