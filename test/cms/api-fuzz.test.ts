// Every route of the OpenAPI document, fuzzed with bad path parameters, query strings and bodies
// (random JSON, junk text under several content types), as an issuer admin (so requests get past
// authentication): never a 5xx, always the error model.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CmsHarness, startCms } from './api-harness.js';

let h: CmsHarness;
let ops: { method: string; path: string }[] = [];
beforeAll(async () => {
  h = await startCms({ DESFIRE_CMS_LIMIT_OPERATOR_REQUESTS: '1000000' }); // every route × 15 runs: more than the default 600/min
  const doc = (await h.call('GET', '/docs/openapi.json')).body as { paths: Record<string, Record<string, unknown>> };
  ops = Object.entries(doc.paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => ({ method: m.toUpperCase(), path })));
}, 120_000);
afterAll(async () => h?.close());

const segment = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom('..', '%00', '%2e%2e', 'A1C001', '04A1B2C3D4E5F6', 'tok_AAAAAAAAAAAA', 'x'.repeat(300), '%ff%fe', 'self', '-1', '1e309'),
);
const contentTypes = ['application/json', 'application/yaml', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', ''];
const body = fc.oneof(
  fc.record({ kind: fc.constant('json' as const), value: fc.jsonValue({ maxDepth: 3 }) }),
  fc.record({ kind: fc.constant('raw' as const), value: fc.string({ maxLength: 200 }), type: fc.constantFrom(...contentTypes) }),
  fc.record({ kind: fc.constant('none' as const) }),
);

/** Row counts of every table an operator action can change (the audit log itself grows). */
async function snapshot(): Promise<Record<string, number>> {
  const db = h.cms.db.db;
  const out: Record<string, number> = {};
  for (const t of ['tenants', 'applications', 'readers', 'reader_roles', 'api_tokens', 'cards', 'enrolment_codes'] as const) {
    const r = await db.selectFrom(t).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    out[t] = Number(r.n);
  }
  out.custodyKeys = (await h.call('GET', '/v1/custody/keys', { token: h.admin })).body.keys.length;
  return out;
}

describe('fuzz: bad input is never a 5xx', () => {
  it('every route × random params, queries and bodies → < 500 with the error model', async () => {
    expect(ops.length).toBeGreaterThan(15);
    const before = await snapshot();
    for (const op of ops) {
      await fc.assert(
        fc.asyncProperty(fc.array(segment, { minLength: 3, maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 }), { maxKeys: 3 }), body, async (segs, query, b) => {
          let i = 0;
          const path = op.path.replace(/\{[^}]+\}/g, () => encodeURIComponent(segs[i++ % segs.length]!));
          const qs = new URLSearchParams(query).toString();
          const url = qs ? `${path}?${qs}` : path;
          const o = b.kind === 'json' ? { token: h.admin, raw: JSON.stringify(b.value) } : b.kind === 'raw' ? { token: h.admin, raw: b.value, contentType: b.type } : { token: h.admin };
          const r = await h.call(op.method, url, o);
          if (r.status >= 500) throw new Error(`${op.method} ${url} → ${r.status} ${r.text.slice(0, 200)}`);
          if (r.status >= 400) {
            expect(typeof r.body?.error?.code, `${op.method} ${url} → ${r.status} ${r.text.slice(0, 200)}`).toBe('string');
            expect(r.body.error.code).toMatch(/^ERR_/);
          }
        }),
        { numRuns: 15 },
      );
    }
    expect((await h.call('GET', '/readyz')).status).toBe(200);
    // bad input changed no state
    expect(await snapshot()).toEqual(before);
  }, 300_000);
});
