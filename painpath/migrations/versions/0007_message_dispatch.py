"""message dispatch: claim lease, claimer, unsure-since; status index

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-25 11:40:00.000000
"""
from alembic import op
import sqlalchemy as sa
import painpath.models


revision = '0007'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_until', painpath.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('unsure_since', painpath.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_message_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_status'))
        batch_op.drop_column('unsure_since')
        batch_op.drop_column('claimed_by')
        batch_op.drop_column('lease_until')
