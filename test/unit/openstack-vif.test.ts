// One source of truth for binding:vif_details: the vhost_switch ML2 driver (openstack/, Python) and
// `vhost-switch vif --format nova` (src/attach/vif.ts) must say the same thing about the port the agent creates.
// The Python side runs under Debian's /usr/bin/python3 from the working tree (no install needed).
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { portSpecSchema } from '../../src/config.js';
import type { PortInfo } from '../../src/switch/port.js';
import { formatVif } from '../../src/attach/vif.js';
import { repoRoot, requireTool } from '../../harness/env.js';

const PYTHON = '/usr/bin/python3';

interface PyResult {
  vif_details: Record<string, unknown>;
  spec: Record<string, unknown>;
}

/** The driver's vif_details and the agent's switch port spec for one Neutron port. */
function python(socketDir: string, portId: string, portSecurity: boolean): PyResult {
  requireTool(PYTHON, 'python3-neutron');
  const script = `
import json, sys
from vhost_switch_openstack import vif
from vhost_switch_openstack.agent import sync
d, pid, ps = sys.argv[1], sys.argv[2], sys.argv[3] == '1'
details = {'port_id': pid, 'network_id': 'n', 'mac_address': 'fa:16:3e:2a:95:02', 'network_type': 'vlan',
           'segmentation_id': 100, 'physical_network': 'physnet1', 'mtu': 1450,
           'fixed_ips': [{'ip_address': '169.254.10.2'}], 'allowed_address_pairs': [], 'port_security_enabled': ps}
print(json.dumps({'vif_details': vif.vif_details(d, pid, ps),
                  'spec': sync.desired_port(details, d, {'physnet1': 'eth1'}, ps)}))
`;
  const out = execFileSync(PYTHON, ['-c', script, socketDir, portId, portSecurity ? '1' : '0'], {
    env: { ...process.env, PYTHONPATH: path.join(repoRoot, 'openstack') },
    encoding: 'utf8',
  });
  return JSON.parse(out) as PyResult;
}

/** The port as GET /v1/ports shows it after the agent's POST /v1/ports with that spec. */
function switchPort(spec: Record<string, unknown>): PortInfo {
  const parsed = portSpecSchema.parse(spec);
  return { ...parsed, socket: String(spec.socket), id: 1, origin: 'api', state: 'connecting', protocolErrors: 0 };
}

describe('vif_details: ML2 driver == vhost-switch vif --format nova', () => {
  for (const portSecurity of [true, false]) {
    it(`for the port the agent creates (port security ${portSecurity ? 'on' : 'off'})`, () => {
      const portId = 'dc065497-3c8d-4f44-8fb4-e1d33c16a536';
      const py = python('/run/vhost-switch/vhu', portId, portSecurity);
      const port = switchPort(py.spec);
      const nova = JSON.parse(formatVif(port, 'nova', { neutronPortId: portId })) as {
        neutron_port_binding: { 'binding:vif_details': Record<string, unknown> };
        nova_network_model_vif: { details: Record<string, unknown>; devname: string };
      };
      expect(nova.neutron_port_binding['binding:vif_details']).toEqual(py.vif_details);
      expect(nova.nova_network_model_vif.details).toEqual(py.vif_details);
      expect(py.vif_details.vhostuser_socket).toBe('/run/vhost-switch/vhu/vhudc065497-3c');
      expect(port.name).toBe('vhudc065497-3c');
    });
  }
});
