// The reload plan: ports compared by their whole spec (fields the schema gains later included), FDB entries by
// MAC+VLAN and port.
import { describe, expect, it } from 'vitest';
import { parseWith, portSpecSchema, type PortSpec } from '../../src/config.js';
import { changedFields, planFdb, planPorts, sameSpec } from '../../src/switch/reconcile.js';

const port = (o: object): PortSpec => parseWith(portSpecSchema, o);

describe('planPorts', () => {
  it('sorts ports into remove, add, replace and keep', () => {
    const running = [port({ name: 'a' }), port({ name: 'b' }), port({ name: 'c' })];
    const wanted = [port({ name: 'a' }), port({ name: 'b', mtu: 9000 }), port({ name: 'd' })];
    const plan = planPorts(running, wanted);
    expect(plan.keep.map((p) => p.name)).toEqual(['a']);
    expect(plan.replace.map((r) => [r.from.mtu, r.to.mtu])).toEqual([[1500, 9000]]);
    expect(plan.add.map((p) => p.name)).toEqual(['d']);
    expect(plan.remove.map((p) => p.name)).toEqual(['c']);
  });

  it('a field it has never heard of counts as a change (new PortSpec fields need nothing here)', () => {
    const a = port({ name: 'a' });
    const withNew = { ...a, allowedMacs: ['52:54:00:00:00:01'] } as PortSpec;
    expect(planPorts([a], [withNew]).replace).toHaveLength(1);
    expect(changedFields(a, withNew)).toEqual(['allowedMacs']);
    expect(planPorts([withNew], [{ ...withNew, allowedMacs: ['52:54:00:00:00:02'] } as PortSpec]).replace).toHaveLength(1);
  });

  it('key order and undefined-valued keys do not count', () => {
    expect(sameSpec({ a: 1, b: { c: 2, d: undefined } }, { b: { c: 2 }, a: 1 })).toBe(true);
    expect(sameSpec([1, 2], [2, 1])).toBe(false);
  });
});

describe('planFdb', () => {
  it('removes entries the file dropped, adds new and re-pointed ones, keeps the rest', () => {
    const running = [{ mac: '52:54:00:00:00:01', vlan: 0, port: 'a' }, { mac: '52:54:00:00:00:02', vlan: 0, port: 'a' }, { mac: '52:54:00:00:00:03', vlan: 0, port: 'a' }];
    const wanted = [{ mac: '52:54:00:00:00:01', vlan: 0, port: 'a' }, { mac: '52:54:00:00:00:02', vlan: 0, port: 'b' }, { mac: '52:54:00:00:00:04', vlan: 0, port: 'a' }];
    const plan = planFdb(running, wanted);
    expect(plan.remove.map((e) => e.mac)).toEqual(['52:54:00:00:00:03']);
    expect(plan.add.map((e) => `${e.mac}>${e.port}`)).toEqual(['52:54:00:00:00:02>b', '52:54:00:00:00:04>a']);
  });
});
