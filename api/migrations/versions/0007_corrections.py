"""Agents' corrections of a feedback item's sentiment, reasons or churn intent (who, when, old, new, the
model's value); the stored analysis is never changed.

Revision ID: 0007
Revises: 0005
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0007'
down_revision = '0005'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('corrections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('feedback_id', sa.Integer(), nullable=False),
    sa.Column('field', sa.String(length=16), nullable=False),
    sa.Column('old_value', JSON, nullable=True),
    sa.Column('new_value', JSON, nullable=False),
    sa.Column('model_value', JSON, nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['feedback_id'], ['feedback.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('corrections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_corrections_feedback_id'), ['feedback_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_corrections_at'), ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('corrections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_corrections_at'))
        batch_op.drop_index(batch_op.f('ix_corrections_feedback_id'))
    op.drop_table('corrections')
