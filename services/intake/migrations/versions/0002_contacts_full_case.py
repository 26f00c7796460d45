"""Contacts, the full case model (victims, suspected traffickers, situation, location, lifecycle), notes,
the audit log of personal-data reads, and idempotency keys.

Ciphertexts written by 0001 (Fernet) are not converted: that format only ever held development data.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 20:09:08.472885
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('case_id', sa.UUID(), nullable=True),
    sa.Column('contact_id', sa.UUID(), nullable=True),
    sa.Column('fields', postgresql.ARRAY(sa.String(length=60)), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    schema='intake'
    )
    op.create_index(op.f('ix_intake_audit_log_case_id'), 'audit_log', ['case_id'], unique=False, schema='intake')
    op.create_index(op.f('ix_intake_audit_log_contact_id'), 'audit_log', ['contact_id'], unique=False, schema='intake')
    op.create_table('idempotency_keys',
    sa.Column('scope', sa.String(length=200), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('request_hash', sa.LargeBinary(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('response', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'key'),
    schema='intake'
    )
    op.create_table('case_notes',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('case_id', sa.UUID(), nullable=False),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('text', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['intake.cases.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    schema='intake'
    )
    op.create_index(op.f('ix_intake_case_notes_case_id'), 'case_notes', ['case_id'], unique=False, schema='intake')
    op.create_table('contacts',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('case_id', sa.UUID(), nullable=True),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('contact_type', sa.String(length=30), nullable=False),
    sa.Column('non_case_reason', sa.String(length=20), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('operator', sa.String(length=200), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('caller_role', sa.String(length=30), nullable=False),
    sa.Column('caller_name', sa.LargeBinary(), nullable=True),
    sa.Column('caller_phone', sa.LargeBinary(), nullable=True),
    sa.Column('caller_phone_hmac', sa.LargeBinary(), nullable=True),
    sa.Column('caller_sex', sa.String(length=10), nullable=False),
    sa.Column('caller_age_band', sa.String(length=10), nullable=False),
    sa.Column('caller_province_code', sa.String(length=2), nullable=True),
    sa.Column('caller_commune_code', sa.String(length=5), nullable=True),
    sa.Column('consent_callback', sa.Boolean(), nullable=False),
    sa.Column('consent_share_identity', sa.Boolean(), nullable=False),
    sa.Column('consultation_topics', postgresql.ARRAY(sa.String(length=40)), server_default='{}', nullable=False),
    sa.Column('consultation_given', postgresql.ARRAY(sa.String(length=40)), server_default='{}', nullable=False),
    sa.Column('notes', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['intake.cases.id'], ),
    sa.PrimaryKeyConstraint('id'),
    schema='intake'
    )
    op.create_index('ix_contacts_list', 'contacts', [sa.literal_column('started_at DESC'), sa.literal_column('id DESC')], unique=False, schema='intake')
    op.create_index(op.f('ix_intake_contacts_caller_phone_hmac'), 'contacts', ['caller_phone_hmac'], unique=False, schema='intake')
    op.create_index(op.f('ix_intake_contacts_case_id'), 'contacts', ['case_id'], unique=False, schema='intake')
    op.create_table('traffickers',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('case_id', sa.UUID(), nullable=False),
    sa.Column('position', sa.SmallInteger(), nullable=False),
    sa.Column('description', sa.LargeBinary(), nullable=True),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('relationship', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['intake.cases.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    schema='intake'
    )
    op.create_index(op.f('ix_intake_traffickers_case_id'), 'traffickers', ['case_id'], unique=False, schema='intake')
    op.create_table('victims',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('case_id', sa.UUID(), nullable=False),
    sa.Column('position', sa.SmallInteger(), nullable=False),
    sa.Column('name', sa.LargeBinary(), nullable=True),
    sa.Column('sex', sa.String(length=10), nullable=False),
    sa.Column('age', sa.SmallInteger(), nullable=True),
    sa.Column('age_band', sa.String(length=10), nullable=False),
    sa.Column('is_child', sa.Boolean(), nullable=False),
    sa.Column('nationality', sa.String(length=2), nullable=True),
    sa.Column('ethnicity', sa.LargeBinary(), nullable=True),
    sa.Column('current_province_code', sa.String(length=2), nullable=True),
    sa.Column('current_commune_code', sa.String(length=5), nullable=True),
    sa.Column('needs', postgresql.ARRAY(sa.String(length=40)), server_default='{}', nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['intake.cases.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    schema='intake'
    )
    op.create_index(op.f('ix_intake_victims_case_id'), 'victims', ['case_id'], unique=False, schema='intake')
    op.add_column('cases', sa.Column('version', sa.Integer(), server_default='1', nullable=False), schema='intake')
    op.add_column('cases', sa.Column('outcome', sa.String(length=30), nullable=True), schema='intake')
    op.add_column('cases', sa.Column('operator', sa.String(length=200), server_default='unknown', nullable=False), schema='intake')
    op.add_column('cases', sa.Column('abroad_country', sa.String(length=2), nullable=True), schema='intake')
    op.add_column('cases', sa.Column('abroad_place', sa.LargeBinary(), nullable=True), schema='intake')
    op.add_column('cases', sa.Column('location_text', sa.LargeBinary(), nullable=True), schema='intake')
    op.add_column('cases', sa.Column('moving_across_border', sa.Boolean(), server_default='false', nullable=False), schema='intake')
    op.add_column('cases', sa.Column('destination_country', sa.String(length=2), nullable=True), schema='intake')
    op.add_column('cases', sa.Column('at_sea', sa.Boolean(), server_default='false', nullable=False), schema='intake')
    op.add_column('cases', sa.Column('violence', sa.Boolean(), server_default='false', nullable=False), schema='intake')
    op.add_column('cases', sa.Column('exploitation', postgresql.ARRAY(sa.String(length=40)), server_default='{}', nullable=False), schema='intake')
    op.add_column('cases', sa.Column('means_of_control', postgresql.ARRAY(sa.String(length=40)), server_default='{}', nullable=False), schema='intake')
    op.add_column('cases', sa.Column('recruitment_channel', sa.String(length=40), nullable=True), schema='intake')
    op.add_column('cases', sa.Column('consent_share_identity', sa.Boolean(), server_default='false', nullable=False), schema='intake')
    op.add_column('cases', sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False), schema='intake')
    op.add_column('cases', sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True), schema='intake')
    op.drop_constraint(op.f('cases_idempotency_key_key'), 'cases', schema='intake', type_='unique')
    op.create_index('ix_cases_list', 'cases', [sa.literal_column('reported_at DESC'), sa.literal_column('id DESC')], unique=False, schema='intake')
    op.create_index('ix_cases_status_urgency', 'cases', ['status', 'urgency'], unique=False, schema='intake')
    op.drop_column('cases', 'idempotency_key', schema='intake')


def downgrade() -> None:
    op.add_column('cases', sa.Column('idempotency_key', sa.VARCHAR(length=100), autoincrement=False, nullable=True), schema='intake')
    op.drop_index('ix_cases_status_urgency', table_name='cases', schema='intake')
    op.drop_index('ix_cases_list', table_name='cases', schema='intake')
    op.create_unique_constraint(op.f('cases_idempotency_key_key'), 'cases', ['idempotency_key'], schema='intake', postgresql_nulls_not_distinct=False)
    op.drop_column('cases', 'closed_at', schema='intake')
    op.drop_column('cases', 'updated_at', schema='intake')
    op.drop_column('cases', 'consent_share_identity', schema='intake')
    op.drop_column('cases', 'recruitment_channel', schema='intake')
    op.drop_column('cases', 'means_of_control', schema='intake')
    op.drop_column('cases', 'exploitation', schema='intake')
    op.drop_column('cases', 'violence', schema='intake')
    op.drop_column('cases', 'at_sea', schema='intake')
    op.drop_column('cases', 'destination_country', schema='intake')
    op.drop_column('cases', 'moving_across_border', schema='intake')
    op.drop_column('cases', 'location_text', schema='intake')
    op.drop_column('cases', 'abroad_place', schema='intake')
    op.drop_column('cases', 'abroad_country', schema='intake')
    op.drop_column('cases', 'operator', schema='intake')
    op.drop_column('cases', 'outcome', schema='intake')
    op.drop_column('cases', 'version', schema='intake')
    op.drop_index(op.f('ix_intake_victims_case_id'), table_name='victims', schema='intake')
    op.drop_table('victims', schema='intake')
    op.drop_index(op.f('ix_intake_traffickers_case_id'), table_name='traffickers', schema='intake')
    op.drop_table('traffickers', schema='intake')
    op.drop_index(op.f('ix_intake_contacts_case_id'), table_name='contacts', schema='intake')
    op.drop_index(op.f('ix_intake_contacts_caller_phone_hmac'), table_name='contacts', schema='intake')
    op.drop_index('ix_contacts_list', table_name='contacts', schema='intake')
    op.drop_table('contacts', schema='intake')
    op.drop_index(op.f('ix_intake_case_notes_case_id'), table_name='case_notes', schema='intake')
    op.drop_table('case_notes', schema='intake')
    op.drop_table('idempotency_keys', schema='intake')
    op.drop_index(op.f('ix_intake_audit_log_contact_id'), table_name='audit_log', schema='intake')
    op.drop_index(op.f('ix_intake_audit_log_case_id'), table_name='audit_log', schema='intake')
    op.drop_table('audit_log', schema='intake')
