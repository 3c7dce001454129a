// The operator console end to end in headless Chromium against a real API: sign in, find a card,
// start a rotation that needs approval, approve it as a second operator (the requester cannot),
// watch it progress, verify an audit entry's inclusion proof in the browser (and see a tampered one
// fail), revoke a reader with confirmation; a tenant admin cannot see another tenant's cards.
// Screenshots of each view go to $DESFIRE_CONSOLE_SCREENSHOTS (docs/console when refreshing the docs).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../src/core/crypto/bytes.js';
import { CTX, MASTER, divInput } from '../cms/rotation-fixture.js';
import { requireComponent } from '../helpers/system.js';
import { AID, TENANT } from '../cms/rotation-fixture.js';
import { OTHER_UIDS, chromiumAvailability, ensureConsoleBuilt, launchChromium, signedInPage, startWorld, type World } from './harness.js';

const HAVE = requireComponent('chromium', chromiumAvailability());
const SHOTS = process.env.DESFIRE_CONSOLE_SCREENSHOTS;
const T = 30_000;

describe.skipIf(!HAVE)('operator console in headless Chromium', () => {
  let w: World;
  let b: Awaited<ReturnType<typeof launchChromium>>;
  const pages: Page[] = [];

  beforeAll(async () => {
    ensureConsoleBuilt();
    w = await startWorld();
    b = await launchChromium();
    if (SHOTS) mkdirSync(SHOTS, { recursive: true });
  }, 180_000);
  afterAll(async () => {
    await b?.close();
    await w?.close();
  });

  const shot = async (p: Page, name: string) => {
    if (SHOTS) await p.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  };

  async function signIn(token: string): Promise<Page> {
    const p = await signedInPage(b.context, w.url, token, T);
    pages.push(p);
    return p;
  }

  it('serves the console with a strict CSP, its verifier key, and refuses a bad token', async () => {
    const r = await fetch(`${w.url}/console/`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(await r.text()).toContain('<div id="app">');
    expect((await fetch(`${w.url}/console`, { redirect: 'manual' })).headers.get('location')).toBe('/console/');
    expect(await (await fetch(`${w.url}/console/vkey`)).text()).toBe(`${w.log.vkey}\n`);

    const p = await b.context.newPage();
    pages.push(p);
    p.setDefaultTimeout(T);
    await p.goto(`${w.url}/console/`);
    await p.getByLabel('Operator API token').fill('dcms_not-a-real-token');
    await p.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => p.getByRole('alert').textContent(), { timeout: T }).toContain('ERR_BAD_TOKEN');
    await shot(p, 'signin');
  });

  it('issuer admin: overview, find a card (key versions, lifecycle, audit), tenants, readers (revoke with confirmation)', async () => {
    const p = await signIn(w.tokens.alice);
    await expect.poll(() => p.getByTestId('who').textContent()).toContain('alice');
    await p.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    await expect.poll(() => p.locator('.tile').first().textContent(), { timeout: T }).toContain('active');
    await expect.poll(() => p.locator('.tile', { hasText: 'Audit health' }).textContent(), { timeout: T }).toContain('Latest signed checkpoint');
    await shot(p, 'overview');

    // find a card by UID (keyboard: "g c" goes to Cards, "/" focuses the search)
    const uid = w.acmeUids[0]!;
    await p.keyboard.press('g');
    await p.keyboard.press('c');
    await p.getByRole('heading', { name: 'Cards', level: 1 }).waitFor();
    // the heading is the shell's; the search box comes with the view once its list has loaded, and
    // "/" focuses it only if it is there (CI once typed the UID into the loading view): wait for it
    await p.getByRole('searchbox', { name: 'Card UID' }).waitFor();
    await p.keyboard.press('/');
    await expect.poll(() => p.getByRole('searchbox', { name: 'Card UID' }).evaluate((el) => el === el.ownerDocument.activeElement)).toBe(true);
    await p.keyboard.type(uid.toLowerCase());
    await p.keyboard.press('Enter');
    await p.getByTestId('card-detail').waitFor();
    expect(await p.getByTestId('card-uid').textContent()).toBe(uid);
    const detail = (await p.getByTestId('card-detail').textContent()) ?? '';
    expect(detail).toContain(AID);
    expect(detail).toContain('v1');
    expect(detail).toContain('card.issue');
    expect(detail).toContain('key.release');
    // no key material: the card's actual AES key (v1) is nowhere in the page
    const key = await w.f.custody.exportForCard(CTX, { kind: 'diversified', master: MASTER, masterVersion: 1, input: divInput(uid), binding: { tenant: TENANT, aid: AID, uid, keyNo: 0, version: 1 } });
    const keyHex = toHex(key);
    key.fill(0);
    const html = (await p.content()).toUpperCase();
    expect(html).not.toContain(keyHex.toUpperCase());
    await shot(p, 'cards');
    // a malformed UID is explained, not sent
    await p.getByLabel('Card UID').fill('xyz');
    await p.getByRole('button', { name: 'Find card' }).click();
    await p.getByText('A UID is 4 to 10 bytes in hex').waitFor();

    await p.goto(`${w.url}/console/#/tenants/${TENANT}`);
    await p.getByRole('table', { name: /Key versions of/ }).first().waitFor();
    await shot(p, 'tenants');

    await p.goto(`${w.url}/console/#/readers`);
    await p.getByRole('link', { name: 'door-1' }).click();
    await p.getByTestId('reader-detail').waitFor();
    expect(await p.getByTestId('reader-detail').textContent()).toContain('offline');
    await p.getByTestId('revoke').click();
    await p.getByRole('dialog').waitFor();
    await shot(p, 'readers-revoke');
    await p.getByRole('button', { name: 'Cancel' }).click(); // cancelling changes nothing
    expect(await p.getByTestId('reader-state').textContent()).toBe('active');
    await p.getByTestId('revoke').click();
    await p.getByRole('button', { name: 'Revoke reader' }).click();
    await expect.poll(() => p.getByTestId('reader-state').textContent(), { timeout: T }).toBe('revoked');
    await shot(p, 'readers');

    // alerts: list and acknowledge (the acknowledgement is an audit entry)
    await p.goto(`${w.url}/console/#/alerts`);
    await p.getByRole('table', { name: /Open alerts \(1\)/ }).waitFor();
    await shot(p, 'alerts');
    await p.getByTestId('ack').click();
    await p.getByRole('table', { name: /Open alerts \(0\)/ }).waitFor();
    expect(await p.getByRole('table', { name: 'Acknowledged' }).textContent()).toContain('operator:');
    await w.log.drain();
    const ack = await w.f.handle.db.selectFrom('audit_entries').select(['actor', 'correlation_id']).where('operation', '=', 'alert.acknowledge').execute();
    expect(ack).toEqual([{ actor: expect.stringMatching(/^operator:tok_/), correlation_id: 'alert-1' }]);
  });

  it('rotation needing approval: the requester cannot approve, a second operator does, it starts and progresses', async () => {
    const alice = await signIn(w.tokens.alice);
    await alice.goto(`${w.url}/console/#/rotation`);
    await alice.getByRole('heading', { name: 'Rotation campaigns', level: 1 }).waitFor();
    const form = alice.getByRole('form', { name: 'New rotation campaign' });
    // the heading is the shell's; the view (its 'New campaign' panel, open when there is no campaign
    // yet) renders after its data: decide whether to open the panel only once it is there
    await alice.getByText('New campaign', { exact: true }).waitFor();
    if (!(await form.isVisible())) await alice.getByText('New campaign', { exact: true }).click();
    await alice.getByLabel('Application').selectOption(`${TENANT}/${AID}`);
    await alice.getByLabel('Key number').fill('0');
    await alice.getByLabel('From version').fill('1');
    await alice.getByLabel('Batch size').fill('6');
    await alice.getByLabel('Reason').fill('annual rotation');
    await alice.getByRole('button', { name: 'Create campaign' }).click();
    await alice.locator('[data-testid=campaign-detail], form .error').first().waitFor();
    expect(await alice.locator('form .error').count(), (await alice.locator('form .error').allTextContents()).join()).toBe(0);
    await expect.poll(() => alice.getByTestId('campaign-state').textContent(), { timeout: T }).toBe('awaiting_approval');
    const id = decodeURIComponent(new URL(alice.url()).hash.split('/')[2]!);
    // starting before approval is refused, and the console says why
    await alice.locator('[data-action=start]').click();
    await alice.getByText('ERR_APPROVAL_REQUIRED').waitFor();

    // the requester's own inbox entry offers no vote
    await alice.goto(`${w.url}/console/#/approvals`);
    await alice.locator('tbody a').first().click();
    await alice.getByTestId('approval-detail').waitFor();
    expect(await alice.getByTestId('approval-detail').textContent()).toContain('no self-approval');
    expect(await alice.getByTestId('approve').count()).toBe(0);
    const approvalUrl = alice.url();

    // bob, a second issuer admin, approves from his inbox
    const bob = await signIn(w.tokens.bob);
    await bob.goto(`${w.url}/console/#/approvals`);
    await bob.getByRole('cell', { name: /rotation campaign/ }).first().waitFor();
    await shot(bob, 'approvals');
    await bob.goto(approvalUrl);
    await bob.getByTestId('approval-detail').waitFor();
    expect(await bob.getByTestId('approval-payload').textContent()).toContain(id);
    await bob.getByTestId('approve').click();
    await expect.poll(() => bob.getByTestId('approval-state').textContent(), { timeout: T }).toBe('approved');
    await shot(bob, 'approval-detail');

    // alice starts it; the card side (virtual cards, real ChangeKey) runs; the page shows progress
    await alice.goto(`${w.url}/console/#/rotation/${id}`);
    await alice.locator('[data-action=start]').click();
    await expect.poll(() => alice.getByTestId('campaign-state').textContent(), { timeout: T }).toBe('running');
    const run = w.runCampaign(id, 250);
    // part way: some cards done, some pending (the page polls the API while it is open)
    await expect.poll(async () => /^done ([1-9]|1\d|2[0-3])$/.test((await alice.locator('[data-testid=totals] .k.done').textContent()) ?? ''), { timeout: 60_000, interval: 100 }).toBe(true);
    expect(await run).toBe('finished');
    await expect.poll(() => alice.getByTestId('totals').textContent(), { timeout: T }).toContain('done 24');
    expect(await alice.getByTestId('totals').textContent()).toContain('pending 0');
    expect(await alice.locator('svg.chart polyline.done').count()).toBe(1);
    expect(await alice.locator('svg.chart rect.done').count()).toBe(4); // 24 cards in batches of 6
    await shot(alice, 'rotation');
    await alice.locator('[data-action=complete]').click();
    await expect.poll(() => alice.getByTestId('campaign-state').textContent(), { timeout: T }).toBe('completed');
    // the card now shows the new key version
    await alice.goto(`${w.url}/console/#/cards/${w.acmeUids[5]}`);
    await alice.getByTestId('card-detail').waitFor();
    expect(await alice.getByTestId('card-detail').textContent()).toContain('v2');
  }, 180_000);

  it('audit: filters, and an entry inclusion proof verified in the browser; a tampered entry fails', async () => {
    const p = await signIn(w.tokens.alice);
    const uid = w.acmeUids[1]!;
    await p.goto(`${w.url}/console/#/audit`);
    await p.getByLabel('Card UID').fill(uid);
    await p.getByLabel('Operation contains').fill('key.release');
    await p.getByRole('button', { name: 'Apply filters' }).click();
    await p.getByText('1 of').waitFor();
    await shot(p, 'audit');
    await p.locator('tbody a').first().click();
    await p.getByTestId('entry-detail').waitFor();
    await p.getByTestId('verify').click();
    await expect.poll(() => p.getByTestId('proof-result').textContent(), { timeout: T }).toContain('Verified in this browser');
    expect(await p.getByTestId('proof-result').textContent()).toContain('inclusion proof');
    await shot(p, 'audit-proof');

    // the same check against an entry altered in transit fails
    await p.route('**/v1/audit/entries?*', async (route) => {
      const res = await route.fetch();
      const body = (await res.json()) as { entries: { result: string }[] };
      for (const e of body.entries) e.result = 'denied';
      await route.fulfill({ response: res, json: body });
    });
    await p.getByTestId('verify').click();
    await expect.poll(() => p.getByTestId('proof-result').textContent(), { timeout: T }).toContain('NOT verified');
    await p.unroute('**/v1/audit/entries?*');
  });

  it('tenant admin of globex sees only its cards; another tenant card is not found; tablet layout', async () => {
    const p = await signIn(w.tokens.globexAdmin);
    await p.goto(`${w.url}/console/#/cards`);
    await p.getByRole('table').waitFor();
    const text = (await p.getByRole('table').textContent()) ?? '';
    for (const u of OTHER_UIDS) expect(text).toContain(u);
    for (const u of w.acmeUids) expect(text).not.toContain(u);
    await p.goto(`${w.url}/console/#/cards/${w.acmeUids[0]}`);
    await p.getByText(`No card ${w.acmeUids[0]} in your scope.`).waitFor();
    await p.goto(`${w.url}/console/#/cards/${OTHER_UIDS[0]}`);
    await p.getByTestId('card-detail').waitFor();
    expect(await p.getByTestId('card-detail').textContent()).toContain('card.issue');
    await shot(p, 'tenant-admin-cards');
    await p.goto(`${w.url}/console/#/readers`);
    await p.getByRole('link', { name: 'till-9' }).waitFor();
    expect(await p.getByRole('link', { name: 'door-1' }).count()).toBe(0);
    await p.goto(`${w.url}/console/#/alerts`);
    await p.getByText('Alerts span tenants').waitFor(); // not for a tenant-scoped token

    await p.setViewportSize({ width: 820, height: 1180 });
    await p.goto(`${w.url}/console/#/overview`);
    await expect.poll(() => p.locator('.tile').first().textContent(), { timeout: T }).toContain('issued');
    // the navigation wraps above the content instead of squeezing it
    const nav = await p.locator('nav').boundingBox();
    const main = await p.locator('main').boundingBox();
    expect(nav && main && nav.y + nav.height <= main.y + 1).toBe(true);
    await shot(p, 'tablet-overview');
  });
});
