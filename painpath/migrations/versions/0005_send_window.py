"""clinic send window and daily cap

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 10:31:46.434137
"""
from alembic import op
import sqlalchemy as sa
import painpath.models


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('clinic', schema=None) as batch_op:
        batch_op.add_column(sa.Column('send_from', sa.String(length=5), nullable=False, server_default='08:00'))
        batch_op.add_column(sa.Column('send_until', sa.String(length=5), nullable=False, server_default='21:00'))
        batch_op.add_column(sa.Column('daily_contact_cap', sa.Integer(), nullable=False, server_default='2'))



def downgrade() -> None:
    with op.batch_alter_table('clinic', schema=None) as batch_op:
        batch_op.drop_column('daily_contact_cap')
        batch_op.drop_column('send_until')
        batch_op.drop_column('send_from')

