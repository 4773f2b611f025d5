"""escalation lifecycle, on-call hours, audit log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 09:30:29.527910
"""
from alembic import op
import sqlalchemy as sa
import painpath.models


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', painpath.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('clinician_id', sa.Integer(), nullable=True),
    sa.Column('patient_id', sa.String(length=32), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['clinician_id'], ['clinician.id'], name=op.f('fk_audit_log_clinician_id_clinician')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_patient_id'), ['patient_id'], unique=False)

    op.create_table('escalation_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('escalation_id', sa.Integer(), nullable=False),
    sa.Column('at', painpath.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('clinician_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=24), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['clinician_id'], ['clinician.id'], name=op.f('fk_escalation_event_clinician_id_clinician')),
    sa.ForeignKeyConstraint(['escalation_id'], ['escalation.id'], name=op.f('fk_escalation_event_escalation_id_escalation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_escalation_event'))
    )
    with op.batch_alter_table('escalation_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_escalation_event_escalation_id'), ['escalation_id'], unique=False)

    with op.batch_alter_table('clinic', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ack_minutes_emergency', sa.Integer(), nullable=False, server_default='5'))
        batch_op.add_column(sa.Column('ack_minutes_urgent', sa.Integer(), nullable=False, server_default='30'))
        batch_op.add_column(sa.Column('fallback_phone', sa.String(length=20), nullable=True))

    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_attempt_at', painpath.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_message_next_attempt_at'), ['next_attempt_at'], unique=False)

    with op.batch_alter_table('clinician', schema=None) as batch_op:
        batch_op.add_column(sa.Column('on_call_start', sa.String(length=5), nullable=True))
        batch_op.add_column(sa.Column('on_call_end', sa.String(length=5), nullable=True))

    with op.batch_alter_table('escalation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=24), nullable=False, server_default='red_flag'))
        batch_op.add_column(sa.Column('acknowledged_at', painpath.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_by', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('resolved_at', painpath.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('resolved_by', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('outcome', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('resolution_note', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('page_level', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('next_page_at', painpath.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('call_by', painpath.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('call_by_notified', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index(batch_op.f('ix_escalation_next_page_at'), ['next_page_at'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_escalation_acknowledged_by_clinician'), 'clinician', ['acknowledged_by'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_escalation_resolved_by_clinician'), 'clinician', ['resolved_by'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_next_attempt_at'))
        batch_op.drop_column('next_attempt_at')

    with op.batch_alter_table('escalation', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_escalation_resolved_by_clinician'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_escalation_acknowledged_by_clinician'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_escalation_next_page_at'))
        batch_op.drop_column('call_by_notified')
        batch_op.drop_column('call_by')
        batch_op.drop_column('next_page_at')
        batch_op.drop_column('page_level')
        batch_op.drop_column('resolution_note')
        batch_op.drop_column('outcome')
        batch_op.drop_column('resolved_by')
        batch_op.drop_column('resolved_at')
        batch_op.drop_column('acknowledged_by')
        batch_op.drop_column('acknowledged_at')
        batch_op.drop_column('kind')

    with op.batch_alter_table('clinician', schema=None) as batch_op:
        batch_op.drop_column('on_call_end')
        batch_op.drop_column('on_call_start')

    with op.batch_alter_table('clinic', schema=None) as batch_op:
        batch_op.drop_column('fallback_phone')
        batch_op.drop_column('ack_minutes_urgent')
        batch_op.drop_column('ack_minutes_emergency')

    with op.batch_alter_table('escalation_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_escalation_event_escalation_id'))

    op.drop_table('escalation_event')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_patient_id'))
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))

    op.drop_table('audit_log')
