"""sms routing and ACK codes: the clinic's own SMS number, the alert's ACK code

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('clinic', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sms_number', sa.String(length=20), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_clinic_sms_number'), ['sms_number'])
    # alerts sent before this revision carry no code: they are acknowledged in the
    # dashboard (an SMS ACK without a code is refused, and the ladder keeps paging)
    with op.batch_alter_table('escalation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ack_code', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('escalation', schema=None) as batch_op:
        batch_op.drop_column('ack_code')
    with op.batch_alter_table('clinic', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_clinic_sms_number'), type_='unique')
        batch_op.drop_column('sms_number')
