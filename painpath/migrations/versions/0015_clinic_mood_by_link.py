"""clinic.mood_by_link: mood and suicide-screening questions by secure chat link

CLINICAL.md §6: move mood/suicide screening to a secure link where possible. When
on, an SMS patient gets a web-chat link instead of the PHQ-4 and ASQ questions.

Revision ID: 0015
Revises: 0014
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('clinic', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mood_by_link', sa.Boolean(), nullable=False,
                                      server_default=sa.text('false')))


def downgrade() -> None:
    with op.batch_alter_table('clinic', schema=None) as batch_op:
        batch_op.drop_column('mood_by_link')
