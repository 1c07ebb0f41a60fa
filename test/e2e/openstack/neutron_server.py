"""Run neutron-server on SQLite with SQLite's lock errors treated as MySQL's.

usage: /usr/bin/python3 neutron_server.py --config-file CONF

The API process and the RPC worker it forks share one SQLite file. When both write, SQLite answers one of them
"database is locked" (at once, when waiting could deadlock). That is what MySQL reports as "Lock wait timeout
exceeded" or "Deadlock found", which oslo.db turns into DBDeadlock and Neutron's DB API retries with the whole
operation. oslo.db has no such filter for SQLite, so without one the request fails with a 500, sometimes after
part of it was committed (an IP allocated, no port). This registers the filter before the server starts (the
workers are forked from this process, so they have it too); Neutron itself is unchanged.
"""
import sys

from oslo_db.sqlalchemy import exc_filters
from sqlalchemy import exc as sqla_exc

exc_filters.filters('sqlite', sqla_exc.OperationalError, r'.*database is locked.*')(exc_filters._deadlock_error)

from neutron.cmd.eventlet.server import main  # noqa: E402  (after the filter, before any engine exists)

if __name__ == '__main__':
    sys.exit(main())
