// The console's end-to-end world: a real API (Fastify on 127.0.0.1, real SQLite, the real audit log
// with signed checkpoints, embedded custody, the rotation/approvals module) serving the built
// console, two tenants, 24 virtual DESFire cards of tenant acme and 2 of tenant globex, a reader,
// operator tokens; and headless Chromium (Debian's chromium driven by playwright-core).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { BrowserContext, Page } from 'playwright-core';
import { buildApi } from '../../src/cms/api/build.js';
import { defaultConsoleRoot } from '../../src/cms/api/console.js';
import { createLogger } from '../../src/cms/api/logging.js';
import { LocalRateLimiter } from '../../src/cms/api/ratelimit.js';
import { alertsModule } from '../../src/cms/api/routes/alerts.js';
import { consentModule } from '../../src/cms/api/routes/consent.js';
import { rotationModule } from '../../src/cms/api/routes/rotation.js';
import { OperatorTokens } from '../../src/cms/api/tokens/service.js';
import { DEFAULT_APPROVAL_POLICY, type ApprovalPolicy } from '../../src/cms/approvals/policy.js';
import { ApprovalService } from '../../src/cms/approvals/service.js';
import type { AuditLog } from '../../src/cms/audit/log.js';
import { ConsentService } from '../../src/cms/consent/index.js';
import { CardRepository, ReaderRepository, TenantRepository } from '../../src/cms/domain/index.js';
import { CampaignService } from '../../src/cms/rotation/campaigns.js';
import { CampaignRunner, type CardExecutor } from '../../src/cms/rotation/runner.js';
import { grantStandingConsent } from '../helpers/consent.js';
import { fileExists } from '../helpers/system.js';
import { openLog } from '../cms/audit-fixture.js';
import { AID, TENANT, makeFixture, type Fixture } from '../cms/rotation-fixture.js';

export const CHROMIUM = process.env.DESFIRE_TEST_CHROMIUM ?? '/usr/bin/chromium';
export const chromiumAvailability = () => fileExists(CHROMIUM, "Debian's chromium (apt-get install chromium)");

export const OTHER_TENANT = 'globex';
export const OTHER_AID = 'B1B2B3';
export const OTHER_UIDS = ['04E0000000A001', '04E0000000A002'];

export const POLICY: ApprovalPolicy = {
  ...DEFAULT_APPROVAL_POLICY,
  // four eyes: the requester and one other issuer admin; campaigns over 10 cards need it
  kinds: { ...DEFAULT_APPROVAL_POLICY.kinds, rotation_campaign: { required: 1, role: 'issuer_admin', ttlMs: 3600_000 } },
  campaignCardThreshold: 10,
};

export interface World {
  url: string;
  f: Fixture;
  log: AuditLog;
  app: FastifyInstance;
  tokens: { alice: string; bob: string; globexAdmin: string; acmeAdmin: string };
  acmeUids: string[];
  /** Drive a started campaign's cards through the real card-side rotation, slowly enough to watch. */
  runCampaign(id: string, perCardMs: number): Promise<string>;
  close(): Promise<void>;
}

/** Build console/dist when it is missing (npm ci builds it; a fresh checkout may not have yet). */
export function ensureConsoleBuilt(): void {
  if (existsSync(path.join(defaultConsoleRoot(), 'index.html'))) return;
  execFileSync('npm', ['run', '-s', 'build:console'], { stdio: 'inherit', cwd: path.resolve(defaultConsoleRoot(), '..', '..') });
}

export async function startWorld(): Promise<World> {
  const f = await makeFixture(24);
  const { log } = await openLog(f.handle);
  const db = f.handle.db;
  const tenants = new TenantRepository(db);
  const readers = new ReaderRepository(db);
  const cards = new CardRepository(db);
  const now = Date.now();

  // tenant globex with its own application and two cards that carry only it
  await tenants.createTenant(OTHER_TENANT, 'Globex');
  await db.insertInto('applications').values({ aid: OTHER_AID, tenant_id: OTHER_TENANT, name: 'canteen', key_type: 'aes', key_count: 2, layout_name: 'test', definition: '{}', created_at: now }).execute();
  for (const uid of OTHER_UIDS) {
    await cards.createBlank(uid);
    await cards.transition(uid, 'issued');
    await cards.recordInstallation(uid, OTHER_AID, [
      { keyNo: 0, version: 1 },
      { keyNo: 1, version: 3 },
    ]);
    await log.record({ actor: 'operator:setup', cardUid: uid, tenant: OTHER_TENANT, aid: OTHER_AID, operation: 'card.issue', result: 'ok', details: { state: 'issued' } });
  }
  // a reader with a role for acme; a refused attempt in the log
  await readers.register('door-1', 'Main entrance');
  await readers.grantRole({ readerId: 'door-1', tenantId: TENANT, aid: AID, keyNo: 0, operations: ['offline'] });
  await readers.register('till-9', 'Canteen till');
  await readers.grantRole({ readerId: 'till-9', tenantId: OTHER_TENANT, aid: OTHER_AID, keyNo: 1, operations: ['offline'] });
  const acmeUids = [...f.cards.keys()].sort();
  for (const uid of acmeUids.slice(0, 3)) {
    await log.record({ actor: 'operator:setup', cardUid: uid, tenant: TENANT, aid: AID, keyNo: 0, keyVersion: 1, operation: 'card.issue', result: 'ok', details: { state: 'issued' } });
    await log.record({ readerId: 'door-1', cardUid: uid, tenant: TENANT, aid: AID, keyNo: 0, keyVersion: 1, operation: 'key.release', result: 'ok', details: { purpose: 'authenticate' } });
  }
  await log.record({ readerId: 'door-1', cardUid: acmeUids[0]!, tenant: TENANT, aid: AID, keyNo: 0, operation: 'key.release', result: 'denied', details: { code: 'ERR_ROLE' } });
  await log.drain();
  // an alert the audit rules raised on the refused release (as the alert engine stores it)
  await db
    .insertInto('audit_alerts')
    .values({ id: 'alert-1', time: Date.now(), rule: 'refusal-burst', severity: 'warning', subject: `reader:door-1`, message: 'key release refused for reader door-1', details: '{}', entry_idx: 8, delivery: 0, delivery_attempts: 0 })
    .execute();

  const tokenSvc = new OperatorTokens(db);
  const tok = async (label: string, roles: ('issuer_admin' | 'tenant_admin' | 'auditor')[], scope: string[]) => (await tokenSvc.create({ label, roles, tenants: scope, createdBy: null })).token;
  const tokens = { alice: await tok('alice', ['issuer_admin'], ['*']), bob: await tok('bob', ['issuer_admin'], ['*']), globexAdmin: await tok('globex admin', ['tenant_admin'], [OTHER_TENANT]), acmeAdmin: await tok('acme admin', ['tenant_admin'], [TENANT]) };

  const consent = new ConsentService({ db, audit: log });
  const app = await buildApi({
    logger: createLogger({ level: 'error' }),
    tokens: tokenSvc,
    rateLimiter: new LocalRateLimiter(),
    limits: { operatorRequests: 100_000, readerRequests: 10_000, anonymousRequests: 100_000, windowMs: 60_000 },
    health: [{ name: 'audit', check: async () => ({ ok: true }) }],
    audit: log,
    domain: { db, tenants, readers, cards },
    // consent enforced as in the composed CMS: campaigns need the tenant's rotate authorisation
    modules: [alertsModule({ db, audit: log }), consentModule({ consent, readers, audit: log }), rotationModule({ db, custody: f.custody, audit: log, policy: POLICY, authorise: (q, w) => consent.requireAuthorisationForCards(q, w) })],
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  // each tenant's admin grants standing rotate authorisations for its applications
  await grantStandingConsent(app, tokens.alice, { operations: ['rotate'] });
  const addr = app.server.address();
  const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;

  const campaigns = new CampaignService({ db, audit: log, approvals: new ApprovalService({ db, audit: log, policy: POLICY }) });
  return {
    url,
    f,
    log,
    app,
    tokens,
    acmeUids,
    async runCampaign(id, perCardMs) {
      const slow: CardExecutor = {
        rotate: async (req) => {
          await new Promise((r) => setTimeout(r, perCardMs));
          return f.executor.rotate(req);
        },
      };
      return new CampaignRunner(campaigns, slow, log).run(id, { commitEvery: 1 });
    },
    async close() {
      await app.close();
      await log.close();
      await f.close();
    },
  };
}

// The flags of the brief (--headless comes from `headless: true`); the profile is a fresh
// --user-data-dir (playwright's persistent context passes it).
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

/**
 * Debian's chromium with a fresh profile directory (removed on close). Operators sign in on
 * separate pages: the console keeps its token in sessionStorage, which is per page (tab).
 */
export async function launchChromium(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(path.join(tmpdir(), 'desfire-console-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1280, height: 900 }, timeout: 90_000 });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** A new page (its own sessionStorage) signed in to the console at `url` with `token`. */
export async function signedInPage(context: BrowserContext, url: string, token: string, timeoutMs: number): Promise<Page> {
  const p = await context.newPage();
  p.setDefaultTimeout(timeoutMs);
  await p.goto(`${url}/console/`);
  await p.getByLabel('Operator API token').fill(token);
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.getByTestId('who').waitFor();
  return p;
}
