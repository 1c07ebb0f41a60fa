"""Build Neutron's database schema in a SQLite file from its models (its migrations need MySQL or PostgreSQL).

usage: /usr/bin/python3 make_schema.py DBFILE
"""
import sys

import sqlalchemy

from neutron.db.migration.models import head


def main(path):
    engine = sqlalchemy.create_engine('sqlite:///' + path)
    head.get_metadata().create_all(engine)
    with engine.connect() as conn:
        # WAL lets the API and RPC workers read while one of them writes.
        conn.exec_driver_sql('PRAGMA journal_mode=WAL')
    print('schema ok')


if __name__ == '__main__':
    main(sys.argv[1])
