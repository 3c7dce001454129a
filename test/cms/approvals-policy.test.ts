// The default approval policy names only real operator roles: a request of any kind can be
// approved by the configured number of distinct holders of that role (a typo in a role name
// would make a kind unapprovable, i.e. the operation it guards impossible).
import { afterAll, describe, expect, it } from 'vitest';
import { ROLES } from '../../src/cms/api/tokens/service.js';
import { APPROVAL_KINDS, DEFAULT_APPROVAL_POLICY } from '../../src/cms/approvals/policy.js';
import { makeFixture, type Fixture } from './rotation-fixture.js';

describe('default approval policy', () => {
  let f: Fixture | undefined;
  afterAll(async () => f?.close());

  it('every kind needs an existing operator role and at least two approvers', () => {
    for (const kind of APPROVAL_KINDS) {
      const p = DEFAULT_APPROVAL_POLICY.kinds[kind];
      expect(ROLES as readonly string[], `role of ${kind}`).toContain(p.role);
      expect(p.required, `approvers of ${kind}`).toBeGreaterThanOrEqual(2);
      expect(p.ttlMs).toBeGreaterThan(0);
    }
  });

  it('requests of key_export, tenant_deletion and vault_unseal must name their target; a bad one stores nothing', async () => {
    f = await makeFixture(0);
    const bad: [string, Record<string, string>][] = [
      ['key_export', { key: 'acme.A1B2C3.0' }],
      ['key_export', { key: 'acme.A1B2C3.0', recipient: 'not-a-thumbprint' }],
      ['key_export', { key: '../etc', recipient: 'x'.repeat(43) }],
      ['tenant_deletion', {}],
      ['tenant_deletion', { tenantId: 'Not A Tenant' }],
      ['vault_unseal', { vaultId: '' }],
    ];
    for (const [kind, payload] of bad) {
      await expect(f.approvals.request(kind as 'key_export', payload, 'alice', 'bad'), `${kind} ${JSON.stringify(payload)}`).rejects.toMatchObject({ code: 'ERR_ROTATION_BAD_INPUT' });
    }
    expect(await f.approvals.list()).toEqual([]);
    await f.close();
    f = undefined;
  });

  it('a request of every kind reaches "approved" with the default policy and issuer admins', async () => {
    f = await makeFixture(0);
    const payloads: Record<string, Record<string, string>> = {
      kek_rotation: { kek: 'kek.acme' },
      rotation_campaign: { campaignId: 'c1' },
      key_export: { key: 'acme.A1B2C3.0', recipient: 'x'.repeat(43) },
      tenant_deletion: { tenantId: 'acme' },
      vault_unseal: { vaultId: 'v1' },
    };
    for (const kind of APPROVAL_KINDS) {
      const r = await f.approvals.request(kind, payloads[kind]!, 'alice', `test ${kind}`);
      let v = await f.approvals.vote(r.id, { id: 'bob', roles: ['issuer_admin'] }, 'approve');
      v = await f.approvals.vote(r.id, { id: 'carol', roles: ['issuer_admin'] }, 'approve');
      expect(v.state, kind).toBe('approved');
    }
  });
});
