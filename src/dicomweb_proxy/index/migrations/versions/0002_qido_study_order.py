"""QIDO-RS: an index in the default study order (StudyDate, StudyTime, UID), so a page of
studies is read in order instead of sorting every study.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_NAME = "ix_study_studydate_studytime_studyinstanceuid"


def upgrade() -> None:
    op.create_index(_NAME, "study", ["studydate", "studytime", "studyinstanceuid"])


def downgrade() -> None:
    op.drop_index(_NAME, "study")
