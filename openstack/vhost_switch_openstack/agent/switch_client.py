"""Client for the vhost-switch control API: HTTP/1.1 + JSON on the daemon's unix socket (docs/openapi.yaml)."""
import http.client
import json
import socket


class SwitchUnavailable(Exception):
    """The control socket does not answer (switch not running, restarting, or the socket path is wrong)."""


class SwitchError(Exception):
    """The switch answered with an error status; `reason` is its one-sentence explanation."""

    def __init__(self, method, path, status, body):
        self.status = status
        self.body = body
        self.reason = body.get('error') if isinstance(body, dict) else str(body)
        super().__init__('%s %s: %s %s' % (method, path, status, self.reason))


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__('localhost', timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self._path)
        except OSError:
            s.close()
            raise
        self.sock = s


class SwitchClient:
    def __init__(self, control_socket, timeout=10.0):
        self.control_socket = control_socket
        self.timeout = timeout

    def _call(self, method, path, body=None):
        conn = _UnixConnection(self.control_socket, self.timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {'Content-Type': 'application/json'} if data is not None else {}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            status = resp.status
        except (OSError, http.client.HTTPException) as e:
            raise SwitchUnavailable('%s: %s' % (self.control_socket, e)) from e
        finally:
            conn.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors='replace')
        if status >= 400:
            raise SwitchError(method, path, status, parsed)
        return parsed

    def version(self):
        return self._call('GET', '/v1/version')

    def list_ports(self):
        return self._call('GET', '/v1/ports')['ports']

    def create_port(self, spec):
        return self._call('POST', '/v1/ports', spec)

    def delete_port(self, name):
        self._call('DELETE', '/v1/ports/' + name)
