"""duplicate flags, merges, caller blocks, name indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 20:22:14.213540
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('caller_blocks',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('phone_index', sa.LargeBinary(), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('lifted_by', sa.String(length=200), nullable=True),
    sa.Column('lifted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    schema='intake'
    )
    op.create_index(op.f('ix_intake_caller_blocks_phone_index'), 'caller_blocks', ['phone_index'], unique=False, schema='intake')
    op.create_table('duplicate_flags',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('case_id', sa.UUID(), nullable=False),
    sa.Column('other_case_id', sa.UUID(), nullable=False),
    sa.Column('reasons', postgresql.ARRAY(sa.String(length=40)), nullable=False),
    sa.Column('status', sa.String(length=20), server_default='open', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('resolved_by', sa.String(length=200), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['intake.cases.id'], ),
    sa.ForeignKeyConstraint(['other_case_id'], ['intake.cases.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('case_id', 'other_case_id', name='uq_duplicate_pair'),
    schema='intake'
    )
    op.create_index(op.f('ix_intake_duplicate_flags_case_id'), 'duplicate_flags', ['case_id'], unique=False, schema='intake')
    op.create_index(op.f('ix_intake_duplicate_flags_other_case_id'), 'duplicate_flags', ['other_case_id'], unique=False, schema='intake')
    op.add_column('cases', sa.Column('merged_into', sa.UUID(), nullable=True), schema='intake')
    op.add_column('traffickers', sa.Column('description_index', sa.LargeBinary(), nullable=True), schema='intake')
    op.create_index(op.f('ix_intake_traffickers_description_index'), 'traffickers', ['description_index'], unique=False, schema='intake')
    op.add_column('victims', sa.Column('name_index', sa.LargeBinary(), nullable=True), schema='intake')
    op.create_index(op.f('ix_intake_victims_name_index'), 'victims', ['name_index'], unique=False, schema='intake')


def downgrade() -> None:
    op.drop_index(op.f('ix_intake_victims_name_index'), table_name='victims', schema='intake')
    op.drop_column('victims', 'name_index', schema='intake')
    op.drop_index(op.f('ix_intake_traffickers_description_index'), table_name='traffickers', schema='intake')
    op.drop_column('traffickers', 'description_index', schema='intake')
    op.drop_column('cases', 'merged_into', schema='intake')
    op.drop_index(op.f('ix_intake_duplicate_flags_other_case_id'), table_name='duplicate_flags', schema='intake')
    op.drop_index(op.f('ix_intake_duplicate_flags_case_id'), table_name='duplicate_flags', schema='intake')
    op.drop_table('duplicate_flags', schema='intake')
    op.drop_index(op.f('ix_intake_caller_blocks_phone_index'), table_name='caller_blocks', schema='intake')
    op.drop_table('caller_blocks', schema='intake')
