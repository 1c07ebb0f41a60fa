// Reproducers for attacks that killed (or may kill) the whole switch process, run in a child process by
// test/dataplane/hostile-frontend.test.ts or by hand:
//   node_modules/.bin/vite-node fuzz/repro/hostile-child.ts devzero|truncate
// One native Switch with one vhost-user port; our frontend attaches honestly, then attacks. Prints ALIVE (and the
// port's state) and exits 0 if the switch survived 1.5 s after the attack; dies of SIGBUS otherwise.
//   devzero:  SET_MEM_TABLE with /dev/zero (anyone can open it) at mmap_offset 1 GiB. GuestMemory::Map checks the
//             file size of regular files only; a shared /dev/zero mapping is a shmem object of the mapping's size,
//             so every page at offset >= that size raises SIGBUS on first touch: the poll thread (or the control
//             thread at SET_VRING_KICK, reading used->idx) dies.
//   truncate: ftruncate(memfd, 0) after SET_MEM_TABLE: the size is checked at map time only. Killed the switch
//             until the SIGBUS guard (native/core/fault_guard.h); now the port's rings are stopped instead.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { VirtioUserPort } from '../../src/gen/virtio-user.js';
import { native } from '../../src/dataplane/native.js';
import { VhostUserEndpoint } from '../../src/vhost/endpoint.js';

const mode = process.argv[2];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vs-repro-'));
const socket = path.join(dir, 'p.sock');
const sw = new (native().Switch)({ threads: 1 });
const id = sw.addPort({ name: 'p', vlan: 0, queuePairs: 1, mtu: 1500 });
const ep = new VhostUserEndpoint({
  native: sw, portId: id, name: 'p', mode: 'server', socketPath: socket, queuePairs: 1, mtu: 1500, offloads: true,
  log: () => {},
});
ep.start();
const port = await VirtioUserPort.connect(socket);
const info = port.driver.info();
console.log(`attached, attack: ${mode}`);

if (mode === 'devzero') {
  const zero = fs.openSync('/dev/zero', 'r+');
  try {
    await port.frontend.setMemTable([{ guestPhysAddr: 0n, size: info.memSize, userAddr: info.memUva, mmapOffset: 1n << 30n, fd: zero }]);
    console.log('table with /dev/zero accepted');
  } catch (e) {
    console.log(`table with /dev/zero refused: ${(e as Error).message}`);
  }
  fs.closeSync(zero);
} else if (mode === 'truncate') {
  fs.ftruncateSync(info.memFd, 0);
  // Wake the poll thread (it would touch the ring within a second anyway) by writing the kick eventfd
  // directly: driver.kick() reads the used ring, which would fault in this (the frontend's) own mapping.
  const one = Buffer.alloc(8);
  one.writeBigUInt64LE(1n);
  fs.writeSync(info.vrings[1]!.kickFd, one);
  console.log('memfd truncated');
} else {
  console.error('usage: hostile-child.ts devzero|truncate');
  process.exit(2);
}

await new Promise((r) => setTimeout(r, 1500));
const st = sw.portStats(id);
console.log(`ALIVE broken=${st.broken} badDescriptor=${st.drops.badDescriptor} ringBroken=${st.drops.ringBroken}`);
port.close();
ep.close();
sw.close();
fs.rmSync(dir, { recursive: true, force: true });
process.exit(0);
