// docs/openapi.yaml says what the daemon answers: every response of the real daemon (every port type, stats,
// threads, FDB, health, version) is validated against the document's schema for its route, with objects closed
// (a field the daemon sends and the document does not list fails), and the document's PortSpec lists exactly the
// fields the server's own zod schema (src/config.ts portSpecSchema) accepts.
import fs from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { portSpecSchema } from '../../src/config.js';
import { makeRunDir, repoRoot, requireRoot } from '../../harness/env.js';
import { DaemonProcess } from './support/daemon.js';

const T = { timeout: 60_000 };
type Schema = Record<string, unknown>;
const doc = parse(fs.readFileSync(path.join(repoRoot, 'docs', 'openapi.yaml'), 'utf8')) as {
  paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: Schema }> }> }>>;
  components: { schemas: Record<string, Schema> };
};

/** OpenAPI 3.0 → JSON Schema for ajv: $refs inlined, nullable turned into a type union, objects closed. */
function toJsonSchema(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(toJsonSchema);
  if (s === null || typeof s !== 'object') return s;
  const o = { ...(s as Schema) };
  if (typeof o.$ref === 'string') return toJsonSchema(doc.components.schemas[o.$ref.replace('#/components/schemas/', '')]);
  if (Array.isArray(o.allOf)) {
    // One object of every member's properties (closing each member apart would refuse the others' fields).
    const parts = (o.allOf as unknown[]).map((m) => toJsonSchema(m) as Schema);
    return {
      type: 'object',
      properties: Object.assign({}, ...parts.map((m) => m.properties ?? {})),
      required: [...new Set(parts.flatMap((m) => (m.required as string[] | undefined) ?? []))],
      additionalProperties: false,
    };
  }
  if (o.nullable) {
    o.type = [o.type, 'null'];
    delete o.nullable;
  }
  for (const k of ['example', 'examples', 'format', 'discriminator']) delete o[k];
  const out: Schema = {};
  for (const [k, v] of Object.entries(o)) out[k] = k === 'properties' ? Object.fromEntries(Object.entries(v as Schema).map(([pk, pv]) => [pk, toJsonSchema(pv)])) : toJsonSchema(v);
  if (out.type === 'object' && out.properties && out.additionalProperties === undefined) out.additionalProperties = false;
  return out;
}

const ajv = new Ajv({ strict: false, allErrors: true });
function check(route: string, method: string, body: unknown, status = '200'): void {
  const schema = doc.paths[route]?.[method]?.responses[status]?.content?.['application/json']?.schema;
  expect(schema, `docs/openapi.yaml has a ${status} JSON schema for ${method.toUpperCase()} ${route}`).toBeDefined();
  const validate = ajv.compile(toJsonSchema(schema) as Schema);
  const ok = validate(body);
  expect(ok ? [] : validate.errors!.map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`), `${method.toUpperCase()} ${route}`).toEqual([]);
}

let d: DaemonProcess;
beforeAll(async () => {
  requireRoot();
  const runDir = makeRunDir('openapi');
  fs.writeFileSync(path.join(runDir, 'cfg.json'), JSON.stringify({
    ports: [
      { name: 'srv', socket: 'srv.sock', mac: '52:54:00:00:60:01', portSecurity: true, allowedIps: ['169.254.60.1'], queueAffinity: { '0': 0 } },
      { name: 'cli', mode: 'client', socket: 'cli.sock', queues: 2, vlanMode: 'trunk', allowedVlans: [100, 200] },
      { name: 'tp', type: 'tap', iface: `vso${process.pid % 100000}`, vlan: 7 },
    ],
    fdb: [{ mac: '52:54:00:00:60:09', port: 'srv' }],
  }));
  d = await DaemonProcess.start(runDir, ['--config', path.join(runDir, 'cfg.json')]);
}, 30_000);
afterAll(async () => {
  if (d?.alive()) await d.stop('SIGTERM');
}, 30_000);

describe('docs/openapi.yaml', T, () => {
  it('describes every response of the real daemon', async () => {
    const get = async (p: string) => (await d.api.request('GET', p)).body;
    check('/v1/health', 'get', await get('/v1/health'));
    check('/v1/version', 'get', await get('/v1/version'));
    check('/v1/ports', 'get', await get('/v1/ports'));
    for (const name of ['srv', 'cli', 'tp']) {
      check('/v1/ports/{name}', 'get', await get(`/v1/ports/${name}`));
      check('/v1/ports/{name}/stats', 'get', await get(`/v1/ports/${name}/stats`));
    }
    check('/v1/stats', 'get', await get('/v1/stats'));
    check('/v1/fdb', 'get', await get('/v1/fdb'));
    check('/v1/threads', 'get', await get('/v1/threads'));
    const created = await d.api.request('POST', '/v1/ports', { name: 'n1', socket: 'n1.sock' });
    check('/v1/ports', 'post', created.body, '201');
    check('/v1/ports/{name}', 'patch', (await d.api.request('PATCH', '/v1/ports/n1', { vlan: 3 })).body);
    const refused = await d.api.request('POST', '/v1/ports', { name: 'n1' });
    expect(refused.status).toBe(409);
  });

  it('PortSpec lists exactly the fields the server validates', () => {
    const fromZod = z.toJSONSchema(portSpecSchema, { io: 'input' }) as { properties: Schema };
    const documented = (doc.components.schemas.PortSpec as { properties: Schema }).properties;
    expect(Object.keys(documented).sort()).toEqual(Object.keys(fromZod.properties).sort());
  });
});
