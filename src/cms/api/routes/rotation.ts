// Key rotation campaigns, approvals, KEK rotation/rewrap and compromise workflows (engineer J).
//
//   GET  /v1/key-versions/:tenant/:aid/:keyNo          versions + the accepted list [current, previous]
//   GET  /v1/readers/self/key-versions/:aid/:keyNo     reader (mTLS): accepted versions of a key its role covers
//   POST /v1/readers/self/rotations                    reader (mTLS, role 'rotate'): field rotation of a pending card: old + new key sealed, single-use token
//   POST /v1/readers/self/rotations/:id/receipt        reader (mTLS): the signed receipt; the item is recorded like the runner does
//   GET  /v1/rotation/campaigns                        list
//   POST /v1/rotation/campaigns                        plan a campaign (approval requested over the threshold)
//   GET  /v1/rotation/campaigns/:id                    progress per batch, failures with their true version
//   POST /v1/rotation/campaigns/:id/:action            start | pause | resume | rollback | complete | cancel
//   GET  /v1/approvals[?state=]  GET /v1/approvals/:id the full request approvers see
//   POST /v1/approvals                                 request an approval (key_export, tenant_deletion, vault_unseal)
//   POST /v1/approvals/:id/approve | /reject           vote (the requester cannot; the role is checked)
//   GET  /v1/kek/:name/census                          dry run: blobs per KEK version
//   POST /v1/kek/:name/rotation-requests               ask for the KEK rotation approvals
//   POST /v1/kek/:name/rotate  {approvalId}            rotate + start the rewrap run (in the background)
//   GET  /v1/kek/runs  GET /v1/kek/runs/:id  POST /v1/kek/runs/:id/resume
//   GET  /v1/compromise/readers/:id/keys               the exact key set a reader received
//   POST /v1/compromise/readers/:id                    revoke, block, compute, propose campaigns
//   POST /v1/compromise/cards/:uid                     denylist + suspend
//   POST /v1/compromise/kek/:name {approvalId}         rotate the KEK, rewrap everything, propose card-key campaigns
// Everything is issuer_admin only (auditors may read); every action is in the audit log.
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import type { CallerContext, KeyCustody } from '../../../custody/types.js';
import type { ApprovalPolicy } from '../../approvals/policy.js';
import { ApprovalService } from '../../approvals/service.js';
import type { AuditLog } from '../../audit/log.js';
import { CompromiseService } from '../../compromise/service.js';
import { masterKeyName } from '../../jobs/keys.js';
import { KekService, type KekServiceOptions } from '../../kek/rewrap.js';
import { disableRetiredVersion } from '../../rotation/versions.js';
import { FieldRotationService } from '../../rotation/field.js';
import { CampaignService, type CampaignServiceOptions, type CampaignSpec } from '../../rotation/campaigns.js';
import { RotationError, rotationErrorStatus } from '../../rotation/errors.js';
import { acceptedVersions, listVersions, readerAcceptedVersions } from '../../rotation/versions.js';
import type { Database } from '../../storage/index.js';
import { actorOf, assertTenant, canSeeTenant, tenantScope } from '../auth.js';
import { callerContext } from '../context.js';
import { ApiError, ERROR_RESPONSES } from '../errors.js';
import type { ApiModule } from '../ports.js';
import type { Role } from '../tokens/service.js';

export interface RotationRouteDeps {
  db: Kysely<Database>;
  custody: KeyCustody;
  audit: AuditLog;
  policy?: ApprovalPolicy;
  /** Tenant consent for campaigns (src/cms/consent requireAuthorisationForCards), when enforced. */
  authorise?: CampaignServiceOptions['authorise'];
  /** The process's background work (src/cms/ops/shutdown.ts): rewrap runs park on SIGTERM and resume at start. */
  work?: { run(name: string, fn: (signal: AbortSignal) => Promise<unknown>): unknown };
  /** SQLite: the native connection, for the rewrap's prepared page commit. */
  sqlite?: KekServiceOptions['sqlite'];
}

const sec = [{ apiToken: [] }];
const ADMIN = { auth: { operator: ['issuer_admin'] as Role[] } };
const READ = { auth: { operator: ['issuer_admin', 'auditor'] as Role[] } };

// Read-side tenant scoping (issue #12): an auditor scoped to some tenants reads only what is theirs.
// Approvals span tenants and the issuer (KEK, campaigns, exports, deletions): all-tenant tokens only.
// A KEK is a tenant's when it is `kek.<tenant>`; others' KEKs and their runs answer as unknown (404).
// A reader's received-key set is cut to the caller's tenants.
function requireAllTenants(req: FastifyRequest): void {
  if (tenantScope(req) !== '*') throw new ApiError(403, 'ERR_FORBIDDEN_TENANT', 'approvals span tenants: an all-tenant token is needed');
}
function kekInScope(req: FastifyRequest, kek: string): boolean {
  const s = tenantScope(req);
  return s === '*' || s.some((t) => kek === `kek.${t}`);
}
const Id = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._-]+$' }) });
const KeyParams = Type.Object({ tenant: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' }), aid: Type.String({ pattern: '^[0-9A-Fa-f]{6}$' }), keyNo: Type.Integer({ minimum: 0, maximum: 13 }) });
const Name = Type.Object({ name: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' }) });
const Uid = Type.Object({ uid: Type.String({ pattern: '^([0-9A-Fa-f]{2}){4,10}$' }) });
const FieldBody = Type.Object(
  { uid: Uid.properties.uid, aid: Type.String({ pattern: '^[0-9A-Fa-f]{6}$' }), keyNo: Type.Integer({ minimum: 0, maximum: 13 }), cardVersion: Type.Integer({ minimum: 0, maximum: 255 }) },
  { additionalProperties: false },
);
const FieldReceipt = Type.Object({ token: Type.String({ minLength: 1, maxLength: 128 }), receipt: Type.String({ minLength: 1, maxLength: 65_536 }) }, { additionalProperties: false });
const Action = Type.Object({ id: Id.properties.id, action: Type.Union(['start', 'pause', 'resume', 'rollback', 'complete', 'cancel'].map((a) => Type.Literal(a))) });
const CampaignBody = Type.Object(
  {
    tenantId: Type.String({ maxLength: 63 }),
    aid: Type.String({ pattern: '^[0-9A-Fa-f]{6}$' }),
    keyNo: Type.Integer({ minimum: 0, maximum: 13 }),
    fromVersion: Type.Optional(Type.Integer({ minimum: 0, maximum: 255 })),
    toVersion: Type.Optional(Type.Integer({ minimum: 0, maximum: 255 })),
    target: Type.Union([
      Type.Object({ kind: Type.Literal('all') }, { additionalProperties: false }),
      Type.Object({ kind: Type.Literal('list'), uids: Type.Array(Type.String({ pattern: '^([0-9A-Fa-f]{2}){4,10}$' }), { minItems: 1, maxItems: 100_000 }) }, { additionalProperties: false }),
      Type.Object({ kind: Type.Literal('query'), cardState: Type.Optional(Type.String({ maxLength: 20 })), uidPrefix: Type.Optional(Type.String({ pattern: '^[0-9A-Fa-f]{1,20}$' })) }, { additionalProperties: false }),
    ]),
    batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
    rate: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
    window: Type.Optional(Type.Object({ startHour: Type.Integer({ minimum: 0, maximum: 23 }), endHour: Type.Integer({ minimum: 0, maximum: 24 }) }, { additionalProperties: false })),
    maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
    graceMs: Type.Optional(Type.Integer({ minimum: 0 })),
    reason: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);
const ApprovalBody = Type.Object(
  {
    kind: Type.Union([Type.Literal('key_export'), Type.Literal('tenant_deletion'), Type.Literal('vault_unseal')]),
    payload: Type.Record(Type.String({ maxLength: 64 }), Type.Union([Type.String({ maxLength: 500 }), Type.Number(), Type.Boolean()])),
    summary: Type.String({ minLength: 1, maxLength: 500 }),
  },
  { additionalProperties: false },
);

function apiError(e: unknown): unknown {
  if (e instanceof RotationError) return new ApiError(rotationErrorStatus(e.code), e.code, e.message);
  return e;
}

async function wrap<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw apiError(e);
  }
}

const rolesOf = (req: FastifyRequest): string[] => (req.principal?.kind === 'operator' ? [...req.principal.roles] : []);

export function rotationModule(d: RotationRouteDeps): ApiModule {
  const approvals = new ApprovalService({ db: d.db, audit: d.audit, ...(d.policy ? { policy: d.policy } : {}) });
  /** The custody diversification master of a key (undefined: random derivation, no master). */
  const masterOf = async (k: { tenantId: string; aid: string; keyNo: number }): Promise<string | undefined> => {
    const app = await d.db.selectFrom('applications').select('definition').where('aid', '=', k.aid).where('tenant_id', '=', k.tenantId).executeTakeFirst();
    let master = `${k.tenantId}/${k.aid}/${k.keyNo}`;
    try {
      const def = JSON.parse(app?.definition ?? '{}') as { keys?: { no: number; derivation?: { method: string; master?: string } }[] };
      const key = def.keys?.find((x) => x.no === k.keyNo);
      if (key?.derivation?.method === 'random') return undefined;
      if (key?.derivation?.master) master = key.derivation.master;
    } catch {
      /* no layout: the default master name */
    }
    return masterKeyName(master);
  };
  const newVersion = async (k: { tenantId: string; aid: string; keyNo: number }): Promise<number> => {
    const master = await masterOf(k);
    if (!master) throw new RotationError('ERR_ROTATION_BAD_INPUT', 'key with random derivation: give toVersion');
    const info = await d.custody.rotateKey({ actor: 'rotation', purpose: 'new key version for a rotation campaign', correlationId: `${k.tenantId}/${k.aid}/${k.keyNo}` }, master);
    return info.latestVersion;
  };
  const campaigns = new CampaignService({ db: d.db, audit: d.audit, approvals, newVersion, retireVersion: disableRetiredVersion(d.custody, masterOf), ...(d.authorise ? { authorise: d.authorise } : {}) });
  const field = new FieldRotationService({ db: d.db, custody: d.custody, audit: d.audit, campaigns });
  const kek = new KekService({ db: d.db, custody: d.custody, audit: d.audit, approvals, ...(d.sqlite ? { sqlite: d.sqlite } : {}) });
  const compromise = new CompromiseService({ db: d.db, audit: d.audit, campaigns, kek });
  const background = (p: Promise<unknown>, app: FastifyInstance) => p.catch((e: unknown) => app.log.error({ code: (e as { code?: string }).code }, 'KEK rewrap run stopped'));
  const startRewrapRun = (ctx: CallerContext, id: string, app: FastifyInstance): void => {
    if (!d.work) return void background(kek.runRewrap(ctx, id), app);
    try {
      d.work.run('kek-rewrap', (signal) => kek.runRewrap(ctx, id, { signal }));
    } catch {
      /* shutting down: the run stays 'running' and is resumed at the next start */
    }
  };

  return {
    name: 'rotation',
    register(app: FastifyInstance) {
      app.get<{ Params: Static<typeof KeyParams> }>(
        '/key-versions/:tenant/:aid/:keyNo',
        { config: READ, schema: { tags: ['rotation'], summary: 'versions of an application key and the versions readers accept', security: sec, params: KeyParams, response: ERROR_RESPONSES } },
        async (req) => {
          assertTenant(req, req.params.tenant);
          const k = { tenantId: req.params.tenant, aid: req.params.aid.toUpperCase(), keyNo: req.params.keyNo };
          return { versions: await listVersions(d.db, k), accepted: await acceptedVersions(d.db, k) };
        },
      );
      app.get<{ Params: { aid: string; keyNo: number } }>(
        '/readers/self/key-versions/:aid/:keyNo',
        {
          config: { auth: { reader: true } },
          schema: { tags: ['rotation'], summary: 'reader: the versions to try for a key its role covers (current first, previous during grace)', security: [{ readerCertificate: [] }], params: Type.Object({ aid: KeyParams.properties.aid, keyNo: KeyParams.properties.keyNo }), response: ERROR_RESPONSES },
        },
        async (req) => {
          const r = await readerAcceptedVersions(d.db, req.principal?.id ?? '', req.params.aid.toUpperCase(), req.params.keyNo);
          if (!r) throw new ApiError(403, 'ERR_FORBIDDEN', 'no role for this key');
          return r;
        },
      );
      const READER = { auth: { reader: true } };
      app.post<{ Body: Static<typeof FieldBody> }>(
        '/readers/self/rotations',
        { config: READER, schema: { tags: ['rotation'], summary: "reader: field rotation of a card still on the old version (role 'rotate', pending card of a running campaign): old and new keys sealed to the reader, single-use token", security: [{ readerCertificate: [] }], body: FieldBody, response: ERROR_RESPONSES } },
        async (req, reply) => reply.code(201).send(await wrap(() => field.request(req.principal?.id ?? '', req.body))),
      );
      app.post<{ Params: Static<typeof Id>; Body: Static<typeof FieldReceipt> }>(
        '/readers/self/rotations/:id/receipt',
        { config: READER, schema: { tags: ['rotation'], summary: 'reader: the signed receipt of a field rotation (token used once); the campaign item is recorded with the verified card version', security: [{ readerCertificate: [] }], params: Id, body: FieldReceipt, response: ERROR_RESPONSES } },
        async (req) => wrap(() => field.report(req.principal?.id ?? '', req.params.id, req.body)),
      );
      app.get('/rotation/campaigns', { config: READ, schema: { tags: ['rotation'], summary: 'rotation campaigns', security: sec, response: ERROR_RESPONSES } }, async (req) => ({ campaigns: (await campaigns.list()).filter((c) => canSeeTenant(req, c.tenantId)) }));
      app.post<{ Body: Static<typeof CampaignBody> }>(
        '/rotation/campaigns',
        { config: ADMIN, schema: { tags: ['rotation'], summary: 'plan a rotation campaign', security: sec, body: CampaignBody, response: ERROR_RESPONSES } },
        async (req, reply) => reply.code(201).send(await wrap(() => campaigns.create(req.body as CampaignSpec, actorOf(req)))),
      );
      app.get<{ Params: Static<typeof Id> }>(
        '/rotation/campaigns/:id',
        { config: READ, schema: { tags: ['rotation'], summary: 'campaign progress per batch', security: sec, params: Id, response: ERROR_RESPONSES } },
        async (req) => {
          const p = await wrap(() => campaigns.progress(req.params.id));
          // another tenant's campaign answers like one that does not exist
          if (!canSeeTenant(req, p.campaign.tenantId)) throw new ApiError(404, 'ERR_ROTATION_NOT_FOUND', `no campaign '${req.params.id}'`);
          return p;
        },
      );
      app.post<{ Params: Static<typeof Action> }>(
        '/rotation/campaigns/:id/:action',
        { config: ADMIN, schema: { tags: ['rotation'], summary: 'start, pause, resume, roll back, complete or cancel a campaign', security: sec, params: Action, response: ERROR_RESPONSES } },
        async (req) => wrap(() => campaigns[req.params.action as 'start'](req.params.id, actorOf(req))),
      );

      app.get<{ Querystring: { state?: string } }>(
        '/approvals',
        { config: READ, schema: { tags: ['approvals'], summary: 'approval requests', security: sec, querystring: Type.Object({ state: Type.Optional(Type.String({ maxLength: 20 })) }), response: ERROR_RESPONSES } },
        async (req) => {
          requireAllTenants(req);
          return { approvals: await approvals.list(req.query.state ? { state: req.query.state as 'pending' } : {}) };
        },
      );
      app.get<{ Params: Static<typeof Id> }>(
        '/approvals/:id',
        { config: READ, schema: { tags: ['approvals'], summary: 'the full request and its votes', security: sec, params: Id, response: ERROR_RESPONSES } },
        async (req) => {
          requireAllTenants(req);
          return wrap(() => approvals.require(req.params.id));
        },
      );
      app.post<{ Body: Static<typeof ApprovalBody> }>(
        '/approvals',
        { config: ADMIN, schema: { tags: ['approvals'], summary: 'request approval of a critical operation', security: sec, body: ApprovalBody, response: ERROR_RESPONSES } },
        async (req, reply) => reply.code(201).send(await wrap(() => approvals.request(req.body.kind, req.body.payload, actorOf(req), req.body.summary))),
      );
      for (const decision of ['approve', 'reject'] as const) {
        app.post<{ Params: Static<typeof Id> }>(
          `/approvals/:id/${decision}`,
          { config: ADMIN, schema: { tags: ['approvals'], summary: `${decision} a request (not your own)`, security: sec, params: Id, response: ERROR_RESPONSES } },
          async (req) => wrap(() => approvals.vote(req.params.id, { id: actorOf(req), roles: rolesOf(req) }, decision)),
        );
      }

      app.get<{ Params: Static<typeof Name> }>(
        '/kek/:name/census',
        { config: READ, schema: { tags: ['kek'], summary: 'dry run: blobs per KEK version', security: sec, params: Name, response: ERROR_RESPONSES } },
        async (req) => {
          if (!kekInScope(req, req.params.name)) throw new ApiError(404, 'ERR_NOT_FOUND', 'key not found');
          return wrap(() => kek.dryRun(callerContext(req, 'KEK census'), req.params.name));
        },
      );
      app.post<{ Params: Static<typeof Name>; Body: { reason?: string } }>(
        '/kek/:name/rotation-requests',
        { config: ADMIN, schema: { tags: ['kek'], summary: 'ask for the approvals of a KEK rotation', security: sec, params: Name, body: Type.Object({ reason: Type.Optional(Type.String({ maxLength: 200 })) }, { additionalProperties: false }), response: ERROR_RESPONSES } },
        async (req, reply) => reply.code(201).send({ approvalId: await wrap(() => kek.requestRotation(req.params.name, actorOf(req), req.body?.reason ?? '')) }),
      );
      app.post<{ Params: Static<typeof Name>; Body: { approvalId: string } }>(
        '/kek/:name/rotate',
        { config: ADMIN, schema: { tags: ['kek'], summary: 'rotate a KEK (approved request) and start rewrapping its blobs', security: sec, params: Name, body: Type.Object({ approvalId: Type.String({ maxLength: 64 }) }, { additionalProperties: false }), response: ERROR_RESPONSES } },
        async (req, reply) => {
          const ctx = callerContext(req, 'KEK rotation');
          const r = await wrap(() => kek.rotate(ctx, req.params.name, req.body.approvalId));
          startRewrapRun(ctx, r.run.id, app);
          return reply.code(202).send(r);
        },
      );
      app.get('/kek/runs', { config: READ, schema: { tags: ['kek'], summary: 'rewrap runs', security: sec, response: ERROR_RESPONSES } }, async (req) => ({ runs: (await kek.listRuns()).filter((r) => kekInScope(req, r.kek)) }));
      app.get<{ Params: Static<typeof Id> }>(
        '/kek/runs/:id',
        { config: READ, schema: { tags: ['kek'], summary: 'a rewrap run (checkpoint and counters)', security: sec, params: Id, response: ERROR_RESPONSES } },
        async (req) => {
          const r = await kek.getRun(req.params.id);
          if (!r || !kekInScope(req, r.kek)) throw new ApiError(404, 'ERR_NOT_FOUND', 'rewrap run not found');
          return r;
        },
      );
      app.post<{ Params: Static<typeof Id> }>(
        '/kek/runs/:id/resume',
        { config: ADMIN, schema: { tags: ['kek'], summary: 'resume an interrupted rewrap run from its checkpoint', security: sec, params: Id, response: ERROR_RESPONSES } },
        async (req, reply) => {
          const r = await kek.getRun(req.params.id);
          if (!r) throw new ApiError(404, 'ERR_NOT_FOUND', 'rewrap run not found');
          startRewrapRun(callerContext(req, 'KEK rewrap resume'), r.id, app);
          return reply.code(202).send(r);
        },
      );

      app.get<{ Params: Static<typeof Id> }>(
        '/compromise/readers/:id/keys',
        { config: READ, schema: { tags: ['compromise'], summary: 'every (tenant, AID, keyNo, version) the reader received, from the audit log', security: sec, params: Id, response: ERROR_RESPONSES } },
        async (req) => ({ keys: (await wrap(() => compromise.readerKeySet(req.params.id))).filter((k) => canSeeTenant(req, k.tenant)) }),
      );
      app.post<{ Params: Static<typeof Id> }>(
        '/compromise/readers/:id',
        { config: ADMIN, schema: { tags: ['compromise'], summary: 'reader compromised: revoke, block, compute its key set, propose campaigns', security: sec, params: Id, response: ERROR_RESPONSES } },
        async (req) => wrap(() => compromise.readerCompromised(req.params.id, actorOf(req))),
      );
      app.post<{ Params: Static<typeof Uid>; Body: { reason?: string } }>(
        '/compromise/cards/:uid',
        { config: ADMIN, schema: { tags: ['compromise'], summary: 'card compromised: denylist (synced to readers) and suspend', security: sec, params: Uid, body: Type.Object({ reason: Type.Optional(Type.String({ maxLength: 200 })) }, { additionalProperties: false }), response: ERROR_RESPONSES } },
        async (req) => wrap(() => compromise.cardCompromised(req.params.uid, actorOf(req), req.body?.reason ?? 'clone suspected')),
      );
      app.post<{ Params: Static<typeof Name>; Body: { approvalId: string } }>(
        '/compromise/kek/:name',
        { config: ADMIN, schema: { tags: ['compromise'], summary: 'KEK compromised: rotate (approved request), rewrap every blob, propose campaigns for the card keys under it', security: sec, params: Name, body: Type.Object({ approvalId: Type.String({ maxLength: 64 }) }, { additionalProperties: false }), response: ERROR_RESPONSES } },
        async (req) => wrap(() => compromise.kekCompromised(callerContext(req, 'KEK compromise'), req.params.name, req.body.approvalId)),
      );
    },
  };
}
