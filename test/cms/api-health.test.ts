// /readyz on the whole CMS names the dependency that is down (here: the audit log, closed).
import { describe, expect, it } from 'vitest';
import { startCms } from './api-harness.js';

describe('readiness on the real services', () => {
  it('ready with every dependency up; 503 naming the audit log once it cannot write', async () => {
    const h = await startCms();
    try {
      const up = await h.call('GET', '/readyz');
      expect(up.status).toBe(200);
      expect(up.body.checks.map((c: { name: string }) => c.name).sort()).toEqual(['audit', 'custody', 'database', 'sessions']);
      await h.cms.deps.audit!.close();
      const down = await h.call('GET', '/readyz');
      expect(down.status).toBe(503);
      expect(down.body.checks).toContainEqual({ name: 'audit', ok: false, reason: 'closed' });
      expect(down.body.checks.filter((c: { ok: boolean }) => !c.ok)).toHaveLength(1);
      // an operator action now fails closed: nothing is written without its audit entry
      const r = await h.call('POST', '/v1/tenants', { token: h.admin, body: { id: 'no-audit', name: 'x' } });
      expect(r.status).toBe(503);
      expect((await h.call('GET', '/v1/tenants', { token: h.admin })).body.tenants).toEqual([]);
      expect((await h.call('GET', '/healthz')).status).toBe(200);
    } finally {
      await h.close();
    }
  }, 180_000);
});
