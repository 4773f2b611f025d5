"""safety screens: the direct safety questions asked after a message, and their answers

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa
import painpath.models


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

UTC = painpath.models.UTCDateTime
PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_table(
        'safety_screen',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('patient_id', sa.String(length=32), nullable=False),
        sa.Column('screen_id', sa.String(length=32), nullable=False),
        sa.Column('tier', sa.String(length=16), nullable=False),
        sa.Column('flag_tier', sa.String(length=16), nullable=False),
        sa.Column('question', sa.Text(), nullable=False),
        sa.Column('asked_at', UTC(), nullable=False),
        sa.Column('due_at', UTC(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('answer_text', sa.Text(), nullable=True),
        sa.Column('answered_at', UTC(), nullable=True),
        sa.Column('escalation_id', sa.Integer(), nullable=True),
        sa.Column('interrupted', sa.String(length=16), nullable=True),
        sa.Column('checkin_id', sa.Integer(), nullable=True),
        sa.Column('exercise_session_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['patient_id'], ['patient.id'],
                                name=op.f('fk_safety_screen_patient_id_patient')),
        sa.ForeignKeyConstraint(['escalation_id'], ['escalation.id'],
                                name=op.f('fk_safety_screen_escalation_id_escalation')),
        sa.ForeignKeyConstraint(['checkin_id'], ['checkin.id'],
                                name=op.f('fk_safety_screen_checkin_id_checkin')),
        sa.ForeignKeyConstraint(['exercise_session_id'], ['exercise_session.id'],
                                name=op.f('fk_safety_screen_exercise_session_id_exercise_session')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_safety_screen')),
    )
    with op.batch_alter_table('safety_screen', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_safety_screen_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_safety_screen_due_at'), ['due_at'], unique=False)
        # a second message while one is pending answers it: never two at once
        batch_op.create_index('uq_safety_screen_pending', ['patient_id'], unique=True,
                              sqlite_where=PENDING, postgresql_where=PENDING)


def downgrade() -> None:
    with op.batch_alter_table('safety_screen', schema=None) as batch_op:
        batch_op.drop_index('uq_safety_screen_pending')
        batch_op.drop_index(batch_op.f('ix_safety_screen_due_at'))
        batch_op.drop_index(batch_op.f('ix_safety_screen_patient_id'))
    op.drop_table('safety_screen')
