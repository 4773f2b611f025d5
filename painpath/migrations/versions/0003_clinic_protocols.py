"""clinic protocols

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 10:19:32.647800
"""
from alembic import op
import sqlalchemy as sa
import painpath.models


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('protocol',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('procedure', sa.String(length=64), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('updated_at', painpath.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_protocol_clinic_id_clinic')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_protocol')),
    sa.UniqueConstraint('clinic_id', 'procedure', name='uq_protocol_clinic_procedure')
    )
    with op.batch_alter_table('protocol', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_protocol_clinic_id'), ['clinic_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('protocol', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_protocol_clinic_id'))

    op.drop_table('protocol')
