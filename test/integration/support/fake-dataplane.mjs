// A stand-in for the native Switch class with ports, an FDB and counters, for the control API's tests that run a
// real VSwitch in this process (test/unit/api.test.ts, support/inproc.ts). Tests of the real daemon never use it.

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** Mirrors the NativeSwitch contract of src/dataplane/native.ts closely enough for the control plane's tests. */
export class FakeSwitch {
  constructor(opts = {}) {
    this.opts = { threads: opts.threads ?? 1, cpus: opts.cpus ?? [], agingSeconds: opts.agingSeconds ?? 300 };
    this.ports = new Map();
    this.fdb = new Map();
    this.nextId = 0;
    this.closed = false;
    // One counter past 2^53 so JSON serialisation of huge counters is exercised.
    this.hugeDrops = 2n ** 60n;
  }
  #port(id) {
    const p = this.ports.get(id);
    if (!p) throw new Error(`no port with id ${id}`);
    return p;
  }
  addPort(opts) {
    if (this.closed) throw new Error('switch closed');
    for (const p of this.ports.values()) if (p.name === opts.name) throw new Error(`port name ${opts.name} in use`);
    const id = this.nextId++;
    this.ports.set(id, { ...opts, id, rx: 0n });
    // As if the guest behind it had sent a frame: one learned entry per port, so flushes have something to do.
    const mac = `02:00:00:00:00:${id.toString(16).padStart(2, '0')}`;
    this.fdb.set(`${mac}/${opts.vlan}`, { mac, vlan: opts.vlan, portId: id, static: false, ageSeconds: 1 });
    return id;
  }
  removePort(id) {
    this.#port(id);
    this.ports.delete(id);
    for (const [k, e] of this.fdb) if (e.portId === id) this.fdb.delete(k);
  }
  resetPort(id) {
    this.#port(id);
  }
  setFeatures() {}
  setMemTable() {}
  setVringNum() {}
  setVringAddr() {}
  setVringBase() {}
  getVringBase() {
    return 0;
  }
  setVringKick() {}
  setVringCall() {}
  setVringErr() {}
  setVringEnable() {}
  portStats(id) {
    const p = this.#port(id);
    p.rx += 10n;
    return {
      id,
      name: p.name,
      rxPackets: p.rx,
      rxBytes: p.rx * 64n,
      txPackets: p.rx / 2n,
      txBytes: (p.rx / 2n) * 64n,
      drops: { noRoute: 1n, queueFull: this.hugeDrops },
      broken: false,
      queues: Array.from({ length: p.queuePairs * 2 }, (_, index) => ({ index, started: false, enabled: false, packets: 0n, bytes: 0n })),
    };
  }
  updatePort() {}
  tscHz() {
    return 1e9;
  }
  threadStats() {
    return Array.from({ length: this.opts.threads }, (_, thread) => ({
      thread,
      busyCycles: 1000n,
      idleCycles: 3000n,
      packets: 10n,
      cyclesPerPacket: 100,
      sleeping: false,
    }));
  }
  fdbList() {
    return [...this.fdb.values()].map((e) => ({ ...e }));
  }
  fdbAdd(mac, vlan, portId) {
    this.#port(portId);
    if (!MAC_RE.test(mac)) throw new Error(`bad mac ${mac}`);
    this.fdb.set(`${mac}/${vlan}`, { mac, vlan, portId, static: true, ageSeconds: 0 });
  }
  fdbRemove(mac, vlan) {
    return this.fdb.delete(`${mac}/${vlan}`);
  }
  /** Learned entries only, like the native flush. */
  fdbFlush(portId) {
    for (const [k, e] of this.fdb) if (!e.static && (portId === undefined || e.portId === portId)) this.fdb.delete(k);
  }
  close() {
    this.closed = true;
  }
}
