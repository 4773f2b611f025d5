"""self-management: exercise sessions, pacing plans and logs, goals, weekly summaries

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa
import painpath.models


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

UTC = painpath.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        'exercise_session',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('patient_id', sa.String(length=32), nullable=False),
        sa.Column('exercise', sa.String(length=32), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('step', sa.Integer(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.Column('due_at', UTC(), nullable=True),
        sa.Column('sent_at', UTC(), nullable=True),
        sa.Column('created_at', UTC(), nullable=False),
        sa.Column('updated_at', UTC(), nullable=False),
        sa.Column('completed_at', UTC(), nullable=True),
        sa.ForeignKeyConstraint(['patient_id'], ['patient.id'],
                                name=op.f('fk_exercise_session_patient_id_patient')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_exercise_session')),
    )
    with op.batch_alter_table('exercise_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exercise_session_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_exercise_session_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_exercise_session_due_at'), ['due_at'], unique=False)

    op.create_table(
        'pacing_plan',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('patient_id', sa.String(length=32), nullable=False),
        sa.Column('activity', sa.String(length=32), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('cap', sa.Float(), nullable=False),
        sa.Column('baseline_reports', sa.JSON(), nullable=False),
        sa.Column('baseline', sa.Float(), nullable=True),
        sa.Column('quota', sa.Float(), nullable=True),
        sa.Column('comfortable', sa.JSON(), nullable=False),
        sa.Column('good_streak', sa.Integer(), nullable=False),
        sa.Column('prompt_time', sa.String(length=5), nullable=False),
        sa.Column('created_at', UTC(), nullable=False),
        sa.Column('updated_at', UTC(), nullable=False),
        sa.ForeignKeyConstraint(['patient_id'], ['patient.id'],
                                name=op.f('fk_pacing_plan_patient_id_patient')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_pacing_plan')),
    )
    with op.batch_alter_table('pacing_plan', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pacing_plan_patient_id'), ['patient_id'], unique=False)

    op.create_table(
        'pacing_log',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('plan_id', sa.Integer(), nullable=False),
        sa.Column('outcome', sa.String(length=20), nullable=False),
        sa.Column('minutes', sa.Float(), nullable=True),
        sa.Column('quota_before', sa.Float(), nullable=True),
        sa.Column('quota_after', sa.Float(), nullable=True),
        sa.Column('created_at', UTC(), nullable=False),
        sa.ForeignKeyConstraint(['plan_id'], ['pacing_plan.id'],
                                name=op.f('fk_pacing_log_plan_id_pacing_plan')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_pacing_log')),
    )
    with op.batch_alter_table('pacing_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pacing_log_plan_id'), ['plan_id'], unique=False)

    op.create_table(
        'goal',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('patient_id', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', UTC(), nullable=False),
        sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_goal_patient_id_patient')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_goal')),
    )
    with op.batch_alter_table('goal', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_goal_patient_id'), ['patient_id'], unique=False)

    op.create_table(
        'program_summary',
        sa.Column('patient_id', sa.String(length=32), nullable=False),
        sa.Column('sent_at', UTC(), nullable=False),
        sa.ForeignKeyConstraint(['patient_id'], ['patient.id'],
                                name=op.f('fk_program_summary_patient_id_patient')),
        sa.PrimaryKeyConstraint('patient_id', name=op.f('pk_program_summary')),
    )


def downgrade() -> None:
    op.drop_table('program_summary')
    op.drop_table('goal')
    op.drop_table('pacing_log')
    op.drop_table('pacing_plan')
    op.drop_table('exercise_session')
