"""pump drug and refill date, diabetic flag and own glucose limit on the enrolment

- enrollment.pump_drug: opioid | baclofen | other (NULL: not recorded, asked as
  "other"); it picks the pump withdrawal question (CLINICAL.md §1.8).
- enrollment.pump_refill_due: the next pump refill date; reminders and the
  missed-refill check follow it (§1.8, §5).
- enrollment.diabetic, enrollment.glucose_limit_mg_dl: a diabetic patient is asked
  their blood sugar on days 1-3 after a steroid and judged against their own
  diabetes-plan limit (NULL: the default in redflags.yaml) (§1.0).

Revision ID: 0014
Revises: 0013
"""
from alembic import op
import sqlalchemy as sa

import painpath.models

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pump_drug', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("pump_refill_due", painpath.models.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('diabetic', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('glucose_limit_mg_dl', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.drop_column('glucose_limit_mg_dl')
        batch_op.drop_column('diabetic')
        batch_op.drop_column('pump_refill_due')
        batch_op.drop_column('pump_drug')
