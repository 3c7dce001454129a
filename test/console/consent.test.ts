// The console's consent view in headless Chromium against a real API: the issuer files two
// authorisation requests; acme's tenant admin sees them pending, grants one (the authorisation names
// the request), refuses the other (with confirmation), revokes the granted authorisation, and
// authorises directly from the form; another tenant's admin sees none of it, and the issuer reads
// the lists without decision buttons. Every decision is checked against the API, not just the page.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AID, TENANT } from '../cms/rotation-fixture.js';
import { requireComponent } from '../helpers/system.js';
import { chromiumAvailability, ensureConsoleBuilt, launchChromium, signedInPage, startWorld, type World } from './harness.js';

const HAVE = requireComponent('chromium', chromiumAvailability());
const T = 30_000;

describe.skipIf(!HAVE)('console: tenant consent', () => {
  let w: World;
  let b: Awaited<ReturnType<typeof launchChromium>>;

  beforeAll(async () => {
    ensureConsoleBuilt();
    w = await startWorld();
    b = await launchChromium();
  }, 180_000);
  afterAll(async () => {
    await b?.close();
    await w?.close();
  });

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON bodies
  async function api(method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: any }> {
    const r = await fetch(`${w.url}/v1${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    return { status: r.status, body: await r.json() };
  }

  const signIn = (token: string): Promise<Page> => signedInPage(b.context, w.url, token, T);

  it('a tenant admin grants and refuses pending requests, revokes and authorises; others only read or see nothing', async () => {
    const [u1, u2] = w.acmeUids;
    const ask = async (uid: string, reason: string) => {
      const r = await api('POST', '/authorisation-requests', w.tokens.alice, { tenant: TENANT, aid: AID, operation: 'install', cards: [uid], ttlSeconds: 3600, reason });
      expect(r.status).toBe(201);
      return r.body.id as string;
    };
    const r1 = await ask(u1!, 'new staff badge');
    const r2 = await ask(u2!, 'visitor card');

    // the issuer reads the pending requests, with no decision buttons
    const issuer = await signIn(w.tokens.alice);
    await issuer.getByRole('link', { name: 'Consent' }).click();
    const pendingI = issuer.getByTestId('pending-requests');
    await expect.poll(() => pendingI.textContent(), { timeout: T }).toContain(r1);
    expect(await issuer.getByTestId(`grant-${r1}`).count()).toBe(0);

    // another tenant's admin sees none of acme's requests
    const globex = await signIn(w.tokens.globexAdmin);
    await globex.goto(`${w.url}/console/#/consent`);
    await expect.poll(() => globex.getByTestId('pending-requests').textContent(), { timeout: T }).toContain('Nothing waits for a decision.');

    // acme's admin: both pending; grant the first
    const p = await signIn(w.tokens.acmeAdmin);
    await p.goto(`${w.url}/console/#/consent`);
    await p.getByRole('heading', { name: 'Consent', level: 1 }).waitFor();
    const pending = p.getByTestId('pending-requests');
    await expect.poll(() => pending.textContent(), { timeout: T }).toContain(r2);
    expect(await pending.textContent()).toContain('new staff badge');
    await p.getByTestId(`grant-${r1}`).click();
    await expect.poll(async () => (await api('GET', `/authorisation-requests/${r1}`, w.tokens.acmeAdmin)).body.state, { timeout: T }).toBe('granted');
    const authId = (await api('GET', `/authorisation-requests/${r1}`, w.tokens.acmeAdmin)).body.authorisationId as string;
    const granted = (await api('GET', `/authorisations/${authId}`, w.tokens.acmeAdmin)).body;
    expect([granted.requestId, granted.cardUids, granted.operation]).toEqual([r1, [u1], 'install']);
    await expect.poll(() => p.getByTestId('authorisations').textContent(), { timeout: T }).toContain(authId);
    await expect.poll(() => pending.textContent(), { timeout: T }).not.toContain(r1);

    // refuse the second: a confirmation first (cancel leaves it pending)
    await p.getByTestId(`refuse-${r2}`).click();
    await p.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    expect((await api('GET', `/authorisation-requests/${r2}`, w.tokens.acmeAdmin)).body.state).toBe('pending');
    await p.getByTestId(`refuse-${r2}`).click();
    await p.getByRole('dialog').getByRole('button', { name: 'Refuse' }).click();
    await expect.poll(async () => (await api('GET', `/authorisation-requests/${r2}`, w.tokens.acmeAdmin)).body.state, { timeout: T }).toBe('refused');
    await expect.poll(() => pending.textContent(), { timeout: T }).toContain('Nothing waits for a decision.');

    // revoke the granted authorisation (confirmed); it leaves the list of those in force
    await p.getByTestId(`revoke-${authId}`).click();
    await p.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
    await expect.poll(async () => (await api('GET', `/authorisations/${authId}`, w.tokens.acmeAdmin)).body.revokedAt, { timeout: T }).not.toBeNull();
    await expect.poll(() => p.getByTestId('authorisations').textContent(), { timeout: T }).not.toContain(authId);
    await p.getByRole('link', { name: 'all', exact: true }).click();
    await expect.poll(() => p.getByTestId(`state-${authId}`).textContent(), { timeout: T }).toBe('revoked');

    // authorise directly: delete of acme's application on every card of profile 'staff'
    await p.goto(`${w.url}/console/#/consent`);
    await p.getByLabel('Operation').selectOption('delete');
    await p.getByLabel("Card profile ('*' = every card; used when no cards are given)").fill('staff');
    await p.getByLabel('Valid for (days)').fill('7');
    await p.getByTestId('authorise-form').getByRole('button', { name: 'Authorise' }).click();
    await expect
      .poll(async () => ((await api('GET', '/authorisations?active=true', w.tokens.acmeAdmin)).body.authorisations as { operation: string; cardProfile: string }[]).some((a) => a.operation === 'delete' && a.cardProfile === 'staff'), { timeout: T })
      .toBe(true);
    for (const pg of [issuer, globex, p]) await pg.close();
  }, 120_000);
});
