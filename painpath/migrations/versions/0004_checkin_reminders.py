"""check-in reminders

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 10:22:53.038400
"""
from alembic import op
import sqlalchemy as sa
import painpath.models


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('checkin', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reminder_sent_at', painpath.models.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('checkin', schema=None) as batch_op:
        batch_op.drop_column('reminder_sent_at')

