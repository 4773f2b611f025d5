"""outreach safety: the clinic's out-of-hours route, message purpose, held outreach

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa
import painpath.models


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

UTC = painpath.models.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table('clinic', schema=None) as batch_op:
        batch_op.add_column(sa.Column('out_of_hours', sa.Text(), nullable=True))
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purpose', sa.String(length=16), nullable=True))
    op.create_table(
        'outreach_hold',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('patient_id', sa.String(length=32), nullable=False),
        sa.Column('escalation_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('ref', sa.String(length=64), nullable=False),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.Column('held_at', UTC(), nullable=False),
        sa.Column('released_at', UTC(), nullable=True),
        sa.Column('outcome', sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(['escalation_id'], ['escalation.id'],
                                name=op.f('fk_outreach_hold_escalation_id_escalation')),
        sa.ForeignKeyConstraint(['patient_id'], ['patient.id'],
                                name=op.f('fk_outreach_hold_patient_id_patient')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_outreach_hold')),
        sa.UniqueConstraint('escalation_id', 'kind', 'ref',
                            name='uq_outreach_hold_escalation_kind_ref'),
    )
    with op.batch_alter_table('outreach_hold', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outreach_hold_escalation_id'), ['escalation_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_outreach_hold_patient_id'), ['patient_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_outreach_hold_released_at'), ['released_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outreach_hold', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outreach_hold_released_at'))
        batch_op.drop_index(batch_op.f('ix_outreach_hold_patient_id'))
        batch_op.drop_index(batch_op.f('ix_outreach_hold_escalation_id'))
    op.drop_table('outreach_hold')
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_column('purpose')
    with op.batch_alter_table('clinic', schema=None) as batch_op:
        batch_op.drop_column('out_of_hours')
