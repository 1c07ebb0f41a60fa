// Unit tests of the harness itself (no QEMU, no DPDK): command lines and parsers.
import { describe, expect, it } from 'vitest';
import { assertLinkLocal } from '../../harness/env.js';
import { qemuCommandLine } from './qemu.js';
import { parseFwdStats, parsePortStats, testpmdCommandLine, vdevArg } from '../../harness/testpmd.js';

const PORT_STATS = `
  ######################## NIC statistics for port 0  ########################
  RX-packets: 11707904   RX-missed: 0          RX-bytes:  749305856
  RX-errors: 0
  RX-nombuf:  0         
  TX-packets: 11706848   TX-errors: 0          TX-bytes:  749238272

  Throughput (since last show)
  Rx-pps:            0          Rx-bps:            0
  Tx-pps:            0          Tx-bps:            0
  ############################################################################

  ######################## NIC statistics for port 1  ########################
  RX-packets: 5          RX-missed: 2          RX-bytes:  320
  RX-errors: 1
  RX-nombuf:  3         
  TX-packets: 7          TX-errors: 4          TX-bytes:  448

  Throughput (since last show)
  Rx-pps:            0          Rx-bps:            0
  Tx-pps:            0          Tx-bps:            0
  ############################################################################
`;

const FWD_STATS = `Telling cores to stop...
Waiting for lcores to finish...

  ---------------------- Forward statistics for port 0  ----------------------
  RX-packets: 3              RX-dropped: 0             RX-total: 3
  TX-packets: 0              TX-dropped: 0             TX-total: 0
  ----------------------------------------------------------------------------

  ---------------------- Forward statistics for port 1  ----------------------
  RX-packets: 0              RX-dropped: 0             RX-total: 0
  TX-packets: 0              TX-dropped: 3             TX-total: 3
  ----------------------------------------------------------------------------

  +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++
  RX-packets: 3              RX-dropped: 0             RX-total: 3
  TX-packets: 0              TX-dropped: 3             TX-total: 3
  ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++

Done.
`;

describe('testpmd output parsers', () => {
  it('parses show port stats all', () => {
    const s = parsePortStats(PORT_STATS);
    expect(s).toHaveLength(2);
    expect(s[0]).toEqual({
      port: 0, rxPackets: 11707904, rxMissed: 0, rxBytes: 749305856, rxErrors: 0, rxNombuf: 0,
      txPackets: 11706848, txErrors: 0, txBytes: 749238272,
    });
    expect(s[1]).toEqual({ port: 1, rxPackets: 5, rxMissed: 2, rxBytes: 320, rxErrors: 1, rxNombuf: 3, txPackets: 7, txErrors: 4, txBytes: 448 });
  });

  it('parses the forward statistics of stop', () => {
    const f = parseFwdStats(FWD_STATS);
    expect(f.ports).toEqual([
      { port: 0, rxPackets: 3, rxDropped: 0, rxTotal: 3, txPackets: 0, txDropped: 0, txTotal: 0 },
      { port: 1, rxPackets: 0, rxDropped: 0, rxTotal: 0, txPackets: 0, txDropped: 3, txTotal: 3 },
    ]);
    expect(f.total).toEqual({ rxPackets: 3, rxDropped: 0, rxTotal: 3, txPackets: 0, txDropped: 3, txTotal: 3 });
  });

  it('returns nothing for unrelated output', () => {
    expect(parsePortStats('Invalid port 9\n')).toEqual([]);
    expect(parseFwdStats('Packet forwarding not started\n')).toEqual({ ports: [], total: undefined });
  });
});

describe('testpmd command line', () => {
  it('builds vdev arguments', () => {
    expect(vdevArg({ type: 'vhost', iface: '/tmp/a.sock' }, 0)).toBe('net_vhost0,iface=/tmp/a.sock,queues=1,client=0');
    expect(vdevArg({ type: 'vhost', iface: '/tmp/a.sock', client: true, queues: 2 }, 1)).toBe('net_vhost1,iface=/tmp/a.sock,queues=2,client=1');
    expect(vdevArg({ type: 'virtio_user', path: '/tmp/b.sock', mac: '02:00:00:00:00:01' }, 0)).toBe(
      'net_virtio_user0,path=/tmp/b.sock,queues=1,mac=02:00:00:00:00:01',
    );
    expect(vdevArg({ type: 'virtio_user', path: '/tmp/b.sock', server: true, queueSize: 1024 }, 3)).toBe(
      'net_virtio_user3,path=/tmp/b.sock,queues=1,server=1,queue_size=1024',
    );
    expect(() => vdevArg({ type: 'vhost', iface: '/tmp/a,b.sock' }, 0)).toThrow(/','/);
  });

  it('pins main and forwarding lcore to one CPU and numbers ports per type', () => {
    const args = testpmdCommandLine({
      name: 't',
      cpu: 1,
      filePrefix: 'vs-t-1',
      ports: [
        { type: 'virtio_user', path: '/s0' },
        { type: 'vhost', iface: '/s1' },
        { type: 'virtio_user', path: '/s2', queues: 2 },
      ],
    });
    expect(args.slice(0, 8)).toEqual(['--lcores=0@1,1@1', '--no-pci', '--single-file-segments', '--file-prefix=vs-t-1', '-m', '256', '--no-telemetry', '--vdev=net_virtio_user0,path=/s0,queues=1']);
    expect(args).toContain('--vdev=net_vhost0,iface=/s1,queues=1,client=0');
    expect(args).toContain('--vdev=net_virtio_user1,path=/s2,queues=2');
    expect(args.slice(args.indexOf('--'))).toEqual(['--', '-i', '--total-num-mbufs=8192', '--forward-mode=io', '--rxq=2', '--txq=2']);
  });
});

describe('QEMU command line', () => {
  const image = { kernel: '/boot/vmlinuz-x', initrd: '/c/initramfs.cpio.gz' };

  it('uses TCG, shared memfd memory and no MSI-X on vhost-user NICs', () => {
    const args = qemuCommandLine({
      ...image,
      name: 'g',
      ip: ['169.254.1.1/16', '169.254.2.1/16'],
      netdevs: [
        { socket: '/r/a.sock', mode: 'client', mac: '52:54:00:00:00:01', reconnect: 1 },
        { socket: '/r/b.sock', mode: 'server', mac: '52:54:00:00:00:02', queues: 2 },
      ],
    });
    const line = args.join(' ');
    expect(line).toContain('-accel tcg');
    expect(line).toContain('-m 256M -object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem');
    expect(line).toContain("-append console=ttyS0 quiet panic=-1 vs.ip=169.254.1.1/16 vs.ip1=169.254.2.1/16");
    expect(line).toContain('-chardev socket,id=chr0,path=/r/a.sock,reconnect=1 -netdev vhost-user,id=net0,chardev=chr0 -device virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01,vectors=0,romfile=');
    expect(line).toContain('-chardev socket,id=chr1,path=/r/b.sock,server=on,wait=off -netdev vhost-user,id=net1,chardev=chr1,queues=2 -device virtio-net-pci,netdev=net1,mac=52:54:00:00:00:02,vectors=0,romfile=,mq=on');
    for (const a of args.filter((x) => x.startsWith('virtio-net-pci'))) expect(a).toMatch(/vectors=0/);
  });

  it('refuses addresses that are not link-local and bad MACs', () => {
    expect(() => qemuCommandLine({ ...image, name: 'g', ip: '10.0.0.1/24' })).toThrow(/link-local/);
    expect(() => qemuCommandLine({ ...image, name: 'g', netdevs: [{ socket: '/s', mode: 'client', mac: 'nope' }] })).toThrow(/MAC/);
  });
});

describe('assertLinkLocal', () => {
  it('accepts 169.254/16 and fe80::/10 only', () => {
    for (const a of ['169.254.0.1', '169.254.255.254/16', 'fe80::1', 'FE80::1/64', 'febf::1']) expect(() => assertLinkLocal(a)).not.toThrow();
    for (const a of ['10.0.0.1', '192.168.1.1/24', '169.255.0.1', '127.0.0.1', '::1', 'fec0::1', '2001:db8::1', '169.254.300.1']) {
      expect(() => assertLinkLocal(a)).toThrow(/link-local/);
    }
  });
});
