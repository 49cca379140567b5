"""Each analysis' sentiment label and language in columns of their own (filled from the stored
analyses), and one covering index over every aggregated column of analysed rows (it replaces
ix_feedback_topics): the dashboard's sentiment by channel and by language no longer parses every
stored analysis, and one index serves topics and sentiment alike. A customer's feedback is indexed
by time (replacing the customer-only index): the queue sorted by latest feedback and a customer's
timeline read the index, not the rows.

Revision ID: 0010
Revises: 0009
"""

from alembic import op
import sqlalchemy as sa

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

HAS_TOPIC = "topic_id IS NOT NULL"
ANALYSED = ['created_at', 'topic_id', 'sentiment_score', 'topic_label', 'channel', 'language', 'sentiment_label']

BACKFILL = {
    "postgresql": """UPDATE feedback SET
        sentiment_label = analysis -> 'sentiment' ->> 'label', language = analysis ->> 'language'
        WHERE topic_id IS NOT NULL AND jsonb_typeof(analysis) = 'object'""",
    "sqlite": """UPDATE feedback SET
        sentiment_label = json_extract(analysis, '$.sentiment.label'), language = json_extract(analysis, '$.language')
        WHERE topic_id IS NOT NULL AND json_type(analysis) = 'object'""",
}


def upgrade() -> None:
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sentiment_label', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('language', sa.String(length=20), nullable=True))
    op.execute(BACKFILL[op.get_bind().dialect.name])
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_index('ix_feedback_topics', sqlite_where=sa.text(HAS_TOPIC), postgresql_where=sa.text(HAS_TOPIC))
        batch_op.create_index('ix_feedback_analysed', ANALYSED, sqlite_where=sa.text(HAS_TOPIC),
                              postgresql_where=sa.text(HAS_TOPIC))
        batch_op.drop_index('ix_feedback_customer_id')
        batch_op.create_index('ix_feedback_customer_time', ['customer_id', 'created_at', 'id'])


def downgrade() -> None:
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_index('ix_feedback_customer_time')
        batch_op.create_index('ix_feedback_customer_id', ['customer_id'])
        batch_op.drop_index('ix_feedback_analysed', sqlite_where=sa.text(HAS_TOPIC),
                            postgresql_where=sa.text(HAS_TOPIC))
        batch_op.create_index('ix_feedback_topics', ['created_at', 'topic_id', 'sentiment_score', 'topic_label'],
                              sqlite_where=sa.text(HAS_TOPIC), postgresql_where=sa.text(HAS_TOPIC))
        batch_op.drop_column('language')
        batch_op.drop_column('sentiment_label')
