// The one stand-in for the native Switch in tests. It records the vhost-user setters and honours the fd ownership
// contract of src/dataplane/native.ts (fds handed over are closed when replaced, on resetPort, or when the call
// fails), for the vhost-user backend's unit tests; and it keeps ports, an FDB and counters, for the control API's
// tests that run a real VSwitch over it in this process (test/unit/api.test.ts, test/integration/support/inproc.ts:
// pass the class as the addon's Switch). Tests of the real daemon never use it; nothing under src/ knows it.
import type { FdbEntry, LogInfo, LogRegion, MemRegion, NativeSwitch, PortOptions, NicPortOptions, ParkStats, PortStats, ThreadStats, VringAddr } from '../../src/dataplane/native.js';

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export interface FakeSwitchOptions {
  threads?: number;
  /** How owned fds are released: a no-op for fake numbers (the default), fs.closeSync for real ones. */
  closeFd?: (fd: number) => void;
}

interface FakePort {
  name: string;
  queuePairs: number;
  vlan: number;
  rx: bigint;
}

export interface FakeCall {
  method: string;
  args: unknown[];
}

export class FakeNativeSwitch implements NativeSwitch {
  readonly calls: FakeCall[] = [];
  /** What getVringBase returns, per "port:index"; 0 by default. */
  readonly vringBase = new Map<string, number>();
  /** fds currently owned, per "port:kind:index" (kind mem uses the region number). */
  readonly owned = new Map<string, number>();
  private readonly failures = new Map<string, Error>();
  private nextPort = 0;
  private readonly closeFd: (fd: number) => void;
  private readonly threads: number;
  private readonly ports = new Map<number, FakePort>();
  private readonly fdb = new Map<string, FdbEntry>();
  private closed = false;
  /** One counter past 2^53, so that the JSON of huge counters is exercised. */
  private readonly hugeDrops = 2n ** 60n;

  constructor(opts: FakeSwitchOptions = {}) {
    this.closeFd = opts.closeFd ?? (() => {});
    this.threads = opts.threads ?? 1;
  }

  private port(id: number): FakePort {
    const p = this.ports.get(id);
    if (!p) throw new Error(`no port with id ${id}`);
    return p;
  }

  private addFakePort(name: string, queuePairs: number, vlan: number): number {
    if (this.closed) throw new Error('switch closed');
    for (const p of this.ports.values()) if (p.name === name) throw new Error(`port name ${name} in use`);
    const id = this.nextPort++;
    this.ports.set(id, { name, queuePairs, vlan, rx: 0n });
    // As if the guest behind it had sent a frame: one learned entry per port, so flushes have something to do.
    const mac = `02:00:00:00:00:${id.toString(16).padStart(2, '0')}`;
    this.fdb.set(`${mac}/${vlan}`, { mac, vlan, portId: id, static: false, ageSeconds: 1 });
    return id;
  }

  /** The next call to `method` throws `message` (as native setters do on bad input). */
  failNext(method: keyof NativeSwitch, message = `${method} refused`): void {
    this.failures.set(method, new Error(message));
  }

  callsTo(method: keyof NativeSwitch): unknown[][] {
    return this.calls.filter((c) => c.method === method).map((c) => c.args);
  }

  private record(method: string, args: unknown[], fds: number[] = []): void {
    this.calls.push({ method, args });
    const err = this.failures.get(method);
    if (err) {
      this.failures.delete(method);
      for (const fd of fds) if (fd >= 0) this.closeFd(fd);
      throw err;
    }
  }

  private own(key: string, fd: number): void {
    const old = this.owned.get(key);
    if (old !== undefined) this.closeFd(old);
    if (fd >= 0) this.owned.set(key, fd);
    else this.owned.delete(key);
  }

  private releasePort(id: number): void {
    for (const [key, fd] of [...this.owned]) {
      if (key.startsWith(`${id}:`)) {
        this.closeFd(fd);
        this.owned.delete(key);
      }
    }
  }

  addPort(opts: PortOptions): number {
    this.record('addPort', [opts]);
    return this.addFakePort(opts.name, opts.queuePairs, opts.vlan ?? 0);
  }
  /** Host ports' backends as the real switch reports them: auto and af_xdp give af_xdp here. */
  private readonly backends = new Map<number, 'af_packet' | 'af_xdp' | 'tap'>();
  addNicPort(opts: NicPortOptions): number {
    this.record('addNicPort', [opts]);
    const id = this.addFakePort(opts.name, opts.queues ?? 1, opts.vlan ?? 0);
    this.backends.set(id, opts.kind === 'tap' ? 'tap' : !opts.backend || opts.backend === 'af_packet' ? 'af_packet' : 'af_xdp');
    return id;
  }
  removePort(id: number): void {
    this.record('removePort', [id]);
    this.port(id);
    this.ports.delete(id);
    for (const [k, e] of this.fdb) if (e.portId === id) this.fdb.delete(k);
    this.releasePort(id);
  }
  resetPort(id: number): void {
    this.record('resetPort', [id]);
    this.releasePort(id);
  }
  setFeatures(id: number, features: bigint): void {
    this.record('setFeatures', [id, features]);
  }
  setMemTable(id: number, regions: MemRegion[]): void {
    this.record('setMemTable', [id, regions], regions.map((r) => r.fd));
    for (const [key, fd] of [...this.owned]) {
      if (key.startsWith(`${id}:mem:`)) {
        this.closeFd(fd);
        this.owned.delete(key);
      }
    }
    regions.forEach((r, i) => this.own(`${id}:mem:${i}`, r.fd));
  }
  addMemReg(id: number, region: MemRegion): void {
    this.record('addMemReg', [id, region], [region.fd]);
    this.own(`${id}:mem:${region.guestPhysAddr}`, region.fd);
  }
  remMemReg(id: number, region: Omit<MemRegion, 'fd'>): void {
    this.record('remMemReg', [id, region]);
    const key = `${id}:mem:${region.guestPhysAddr}`;
    const fd = this.owned.get(key);
    if (fd !== undefined) {
      this.closeFd(fd);
      this.owned.delete(key);
    }
  }
  maxMemSlots(): number {
    return 32;
  }
  setVringNum(id: number, index: number, num: number): void {
    this.record('setVringNum', [id, index, num]);
  }
  setVringAddr(id: number, index: number, addr: VringAddr): void {
    this.record('setVringAddr', [id, index, addr]);
  }
  setLogBase(id: number, log: LogRegion): void {
    this.record('setLogBase', [id, log], [log.fd]);
    this.own(`${id}:log:0`, log.fd);
  }
  logInfo(id: number): LogInfo {
    return { size: 0n, outside: 0n, logging: false };
  }
  sendRarp(id: number, mac: string): void {
    this.record('sendRarp', [id, mac]);
  }
  setVringBase(id: number, index: number, base: number): void {
    this.record('setVringBase', [id, index, base]);
    this.vringBase.set(`${id}:${index}`, base);
  }
  getVringBase(id: number, index: number): number {
    this.record('getVringBase', [id, index]);
    return this.vringBase.get(`${id}:${index}`) ?? 0;
  }
  setVringKick(id: number, index: number, fd: number): void {
    this.record('setVringKick', [id, index, fd], [fd]);
    this.own(`${id}:kick:${index}`, fd);
  }
  setVringCall(id: number, index: number, fd: number): void {
    this.record('setVringCall', [id, index, fd], [fd]);
    this.own(`${id}:call:${index}`, fd);
  }
  setVringErr(id: number, index: number, fd: number): void {
    this.record('setVringErr', [id, index, fd], [fd]);
    this.own(`${id}:err:${index}`, fd);
  }
  setVringEnable(id: number, index: number, enable: boolean): void {
    this.record('setVringEnable', [id, index, enable]);
  }
  /** A port's counters grow by 10 frames each time they are read. */
  portStats(id: number): PortStats {
    const backend = this.backends.get(id);
    const nic = backend ? { backend, ...(backend === 'af_xdp' ? { xdpMode: 'generic' as const } : {}) } : {};
    const p = this.port(id);
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
      ...nic,
      queues: Array.from({ length: p.queuePairs * 2 }, (_, index) => ({ index, started: false, enabled: false, broken: false, packets: 0n, bytes: 0n, drops: {} })),
    };
  }
  threadStats(): ThreadStats[] {
    return Array.from({ length: this.threads }, (_, thread) => ({
      thread,
      busyCycles: 1000n,
      idleCycles: 3000n,
      packets: 10n,
      parks: 0n,
      sleeps: 0n,
      cyclesPerPacket: 100,
      sleeping: false,
      cpu: null,
      queues: [],
    }));
  }
  parkStats(): ParkStats {
    return { control: 0n, housekeeping: 0n };
  }
  tscHz(): number {
    return 1e9;
  }
  startCapture(): void {
    throw new Error('the fake switch does not capture');
  }
  readCapture(): null {
    return null;
  }
  stopCapture(): void {}
  updatePort(id: number, opts: unknown): void {
    this.record('updatePort', [id, opts]);
  }
  fdbList(): FdbEntry[] {
    return [...this.fdb.values()].map((e) => ({ ...e }));
  }
  fdbAdd(mac: string, vlan: number, portId: number): void {
    this.record('fdbAdd', [mac, vlan, portId]);
    this.port(portId);
    if (!MAC_RE.test(mac)) throw new Error(`bad mac ${mac}`);
    this.fdb.set(`${mac}/${vlan}`, { mac, vlan, portId, static: true, ageSeconds: 0 });
  }
  fdbRemove(mac: string, vlan: number): boolean {
    this.record('fdbRemove', [mac, vlan]);
    return this.fdb.delete(`${mac}/${vlan}`);
  }
  /** Learned entries only, like the native flush. */
  fdbFlush(portId?: number): void {
    this.record('fdbFlush', [portId]);
    for (const [k, e] of this.fdb) if (!e.static && (portId === undefined || e.portId === portId)) this.fdb.delete(k);
  }
  close(): void {
    this.record('close', []);
    this.closed = true;
    for (const fd of this.owned.values()) this.closeFd(fd);
    this.owned.clear();
  }
}
