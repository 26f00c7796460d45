"""contacts by month, type and channel

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 20:26:00.966892
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contacts_by_type',
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('contact_type', sa.String(length=30), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('contacts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('month', 'contact_type', 'channel'),
    schema='reporting'
    )


def downgrade() -> None:
    op.drop_table('contacts_by_type', schema='reporting')
