"""Scale: covering indexes for the dashboards' aggregations, the analysis work queue (a lease per
pending row), each analysis' top topic and sentiment score in columns of their own (filled from the
stored analyses), and the token buckets every API process shares.

Revision ID: 0008
Revises: 0005
"""

from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0005'
branch_labels = None
depends_on = None

HAS_TOPIC = "topic_id IS NOT NULL"
PENDING = "status = 'pending'"

BACKFILL = {
    "postgresql": """UPDATE feedback SET
        topic_id = COALESCE((analysis -> 'topics' -> 0 ->> 'id')::integer, -1),
        topic_label = COALESCE(analysis -> 'topics' -> 0 ->> 'label', 'no topic'),
        sentiment_score = (analysis -> 'sentiment' ->> 'score')::double precision
        WHERE status = 'analysed' AND analysis IS NOT NULL AND jsonb_typeof(analysis) = 'object'""",
    "sqlite": """UPDATE feedback SET
        topic_id = COALESCE(json_extract(analysis, '$.topics[0].id'), -1),
        topic_label = COALESCE(json_extract(analysis, '$.topics[0].label'), 'no topic'),
        sentiment_score = json_extract(analysis, '$.sentiment.score')
        WHERE status = 'analysed' AND analysis IS NOT NULL AND json_type(analysis) = 'object'""",
}


def upgrade() -> None:
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.add_column(sa.Column('leased_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('sentiment_score', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('topic_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('topic_label', sa.String(length=200), nullable=True))
    op.execute(BACKFILL[op.get_bind().dialect.name])
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.create_index('ix_feedback_scores', ['created_at', 'nps', 'csat', 'ces', 'customer_id', 'channel'])
        batch_op.create_index('ix_feedback_topics', ['created_at', 'topic_id', 'sentiment_score', 'topic_label'],
                              sqlite_where=sa.text(HAS_TOPIC), postgresql_where=sa.text(HAS_TOPIC))
        batch_op.create_index('ix_feedback_pending', ['id'], sqlite_where=sa.text(PENDING),
                              postgresql_where=sa.text(PENDING))
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_opened_at', ['opened_at'])
    op.create_table('rate_limit_buckets',
    sa.Column('bucket', sa.String(length=300), nullable=False),
    sa.Column('tokens', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.Column('full_at', sa.Float(), nullable=False),
    sa.Column('granted', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('bucket')
    )
    with op.batch_alter_table('rate_limit_buckets', schema=None) as batch_op:
        batch_op.create_index('ix_rate_limit_buckets_full_at', ['full_at'])


def downgrade() -> None:
    with op.batch_alter_table('rate_limit_buckets', schema=None) as batch_op:
        batch_op.drop_index('ix_rate_limit_buckets_full_at')
    op.drop_table('rate_limit_buckets')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_opened_at')
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_index('ix_feedback_pending', sqlite_where=sa.text(PENDING), postgresql_where=sa.text(PENDING))
        batch_op.drop_index('ix_feedback_topics', sqlite_where=sa.text(HAS_TOPIC), postgresql_where=sa.text(HAS_TOPIC))
        batch_op.drop_index('ix_feedback_scores')
        batch_op.drop_column('topic_label')
        batch_op.drop_column('topic_id')
        batch_op.drop_column('sentiment_score')
        batch_op.drop_column('leased_until')
