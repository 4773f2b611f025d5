"""revocable chat links, alert SMS linked to their escalation

- patient.chat_link_key: the opaque value a web-chat link carries (never the
  patient id); replaced on cancel, opt-out and deletion, which revokes every link
  sent before.
- message.escalation_id: the alert pages, clinicians' ACK texts and their
  confirmations belong to the escalation (and so to the patient): deleting the
  patient deletes them.

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chat_link_key', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_patient_chat_link_key'), ['chat_link_key'],
                              unique=True)
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('escalation_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_message_escalation_id_escalation'),
                                    'escalation', ['escalation_id'], ['id'])
        batch_op.create_index(batch_op.f('ix_message_escalation_id'), ['escalation_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_escalation_id'))
        batch_op.drop_constraint(batch_op.f('fk_message_escalation_id_escalation'),
                                 type_='foreignkey')
        batch_op.drop_column('escalation_id')
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patient_chat_link_key'))
        batch_op.drop_column('chat_link_key')
