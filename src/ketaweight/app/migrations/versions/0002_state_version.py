"""state version: one row counting the changes the pages' caches depend on (shared by every server process)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table('state_version',
                            sa.Column('id', sa.Integer(), nullable=False),
                            sa.Column('n', sa.Integer(), nullable=False),
                            sa.PrimaryKeyConstraint('id'))
    op.bulk_insert(table, [{'id': 1, 'n': 0}])


def downgrade() -> None:
    op.drop_table('state_version')
