// Critical operations under M-of-N approval (engineer A; approvals themselves: routes/rotation.ts).
//
//   POST   /v1/custody/keys/:name/export   {recipient: JWK, approvalId, version?}
//          the key sealed (JWE ECDH-ES, A256GCM) to the recipient P-256 key; needs a consumed
//          key_export approval naming the key and the recipient's RFC 7638 thumbprint
//   DELETE /v1/tenants/:id?approvalId=…[&scheduleRemoval=true]
//          needs a consumed tenant_deletion approval naming the tenant; 409 ERR_TENANT_HAS_CARDS
//          (details.cards) while cards hold its applications, unless scheduleRemoval
//          again on a tenant deleted with scheduled removals: drops its kept rows once no card holds them
//   GET    /v1/custody/status              sealed or not, vault id, share ceremony progress
//   POST   /v1/custody/unseal              {passphrase, approvalId} | {share}
//   POST   /v1/custody/seal                {reason}
// Issuer admins only (all-tenant auditors may read the vault status); the vault routes need an
// all-tenant token. Every refusal has a stable code; every outcome is audited.
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import type { JWK } from 'jose';
import type { KeyCustody } from '../../../custody/types.js';
import { CriticalOperations, OperationError } from '../../approvals/operations.js';
import type { ApprovalPolicy } from '../../approvals/policy.js';
import { ApprovalService } from '../../approvals/service.js';
import { type VaultControl, VaultError, VaultUnsealService } from '../../approvals/unseal.js';
import type { AuditLog } from '../../audit/log.js';
import type { TenantRepository } from '../../domain/tenants.js';
import { RotationError, rotationErrorStatus } from '../../rotation/errors.js';
import type { Database } from '../../storage/index.js';
import { assertTenant, tenantScope } from '../auth.js';
import { callerContext } from '../context.js';
import { ApiError, ERROR_RESPONSES, forbidden } from '../errors.js';
import type { ApiModule } from '../ports.js';
import type { Role } from '../tokens/service.js';
import { keyOwner } from './custody.js';

export interface CriticalRouteDeps {
  db: Kysely<Database>;
  custody: KeyCustody;
  audit: AuditLog;
  tenants: TenantRepository;
  /** The embedded vault (unseal/seal routes); absent for PKCS#11 and Vault Transit. */
  vault?: VaultControl;
  policy?: ApprovalPolicy;
}

const sec = [{ apiToken: [] }];
const ADMIN = { auth: { operator: ['issuer_admin'] as Role[] } };
const READ = { auth: { operator: ['issuer_admin', 'auditor'] as Role[] } };
const ApprovalId = Type.String({ minLength: 1, maxLength: 64 });
const KeyName = Type.Object({ name: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' }) });
const Jwk = Type.Object({ kty: Type.String({ maxLength: 8 }), crv: Type.String({ maxLength: 16 }), x: Type.String({ maxLength: 128 }), y: Type.String({ maxLength: 128 }) }, { additionalProperties: true });
const ExportBody = Type.Object({ recipient: Jwk, approvalId: Type.Optional(ApprovalId), version: Type.Optional(Type.Integer({ minimum: 1 })) }, { additionalProperties: false });
const KeyExportView = Type.Object({ format: Type.Literal('jwe-compact'), jwe: Type.String(), key: Type.String(), version: Type.Integer(), alg: Type.String(), purpose: Type.String(), recipient: Type.String() });
const TenantParams = Type.Object({ id: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' }) });
const DeleteQuery = Type.Object({ approvalId: Type.Optional(ApprovalId), scheduleRemoval: Type.Optional(Type.Boolean()) }, { additionalProperties: false });
const UnsealBody = Type.Union([
  Type.Object({ passphrase: Type.String({ minLength: 1, maxLength: 1024 }), approvalId: Type.Optional(ApprovalId) }, { additionalProperties: false }),
  Type.Object({ share: Type.String({ minLength: 1, maxLength: 4096 }) }, { additionalProperties: false }),
]);
const SealBody = Type.Object({ reason: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false });
const VaultStatus = Type.Object({
  backend: Type.String(),
  initialized: Type.Boolean(),
  sealed: Type.Boolean(),
  vaultId: Type.Optional(Type.String()),
  sealType: Type.Optional(Type.String()),
  threshold: Type.Optional(Type.Integer()),
  progress: Type.Optional(Type.Integer()),
  submittedBy: Type.Optional(Type.Array(Type.String())),
});
const R = { ...ERROR_RESPONSES, 409: Type.Ref('Error'), 428: Type.Ref('Error'), 503: Type.Ref('Error') };

function apiError(e: unknown): unknown {
  if (e instanceof RotationError) return new ApiError(rotationErrorStatus(e.code), e.code, e.message);
  if (e instanceof OperationError || e instanceof VaultError) return new ApiError(e.status, e.code, e.message, e instanceof OperationError ? e.details : undefined);
  const code = (e as { code?: string })?.code;
  if (code === 'ERR_CUSTODY_NOT_EXTRACTABLE') return new ApiError(422, code, (e as Error).message);
  if (code === 'ERR_CUSTODY_UNSEAL_FAILED' || code === 'ERR_CUSTODY_BAD_SHARE') return new ApiError(400, code, (e as Error).message);
  return e;
}

const wrap = <T>(fn: () => Promise<T>): Promise<T> => fn().catch((e: unknown) => Promise.reject(apiError(e)));

function allTenants(req: FastifyRequest, what: string): void {
  if (tenantScope(req) !== '*') throw forbidden(`${what} concerns every tenant: an all-tenant operator token is needed`, 'ERR_FORBIDDEN_TENANT');
}

export function criticalModule(d: CriticalRouteDeps): ApiModule {
  const approvals = new ApprovalService({ db: d.db, audit: d.audit, ...(d.policy ? { policy: d.policy } : {}) });
  const ops = new CriticalOperations({ db: d.db, custody: d.custody, approvals, audit: d.audit, tenants: d.tenants });
  const vault = d.vault ? new VaultUnsealService({ vault: d.vault, approvals, audit: d.audit, backend: d.custody.backend }) : undefined;
  const needVault = (): VaultUnsealService => {
    if (!vault) throw new ApiError(422, 'ERR_VAULT_UNSUPPORTED', `the ${d.custody.backend} custody backend has no vault to seal or unseal here`);
    return vault;
  };
  return {
    name: 'critical',
    register(app: FastifyInstance) {
      app.post<{ Params: Static<typeof KeyName>; Body: Static<typeof ExportBody> }>(
        '/custody/keys/:name/export',
        { config: ADMIN, schema: { tags: ['custody'], summary: 'export a key sealed to a recipient public key (JWE ECDH-ES), with a consumed key_export approval', security: sec, params: KeyName, body: ExportBody, response: { 200: KeyExportView, ...R, 422: Type.Ref('Error') } } },
        async (req) => {
          const scope = tenantScope(req);
          const owner = keyOwner(req.params.name);
          if (scope !== '*' && (owner === null || !scope.includes(owner))) throw new ApiError(404, 'ERR_CUSTODY_UNKNOWN_KEY', `no key '${req.params.name}'`);
          return wrap(() => ops.exportKey(callerContext(req, 'key export'), req.params.name, req.body.recipient as JWK, req.body.approvalId, req.body.version));
        },
      );
      app.delete<{ Params: Static<typeof TenantParams>; Querystring: Static<typeof DeleteQuery> }>(
        '/tenants/:id',
        { config: ADMIN, schema: { tags: ['tenants'], summary: 'delete a tenant (consumed tenant_deletion approval): readers lose its roles, its custody keys are destroyed, the audit log keeps everything', security: sec, params: TenantParams, querystring: DeleteQuery, response: R } },
        async (req) => {
          assertTenant(req, req.params.id);
          return wrap(() => ops.deleteTenant(callerContext(req, 'tenant deletion'), req.params.id, req.query.approvalId, { scheduleRemoval: req.query.scheduleRemoval === true }));
        },
      );
      app.get(
        '/custody/status',
        { config: READ, schema: { tags: ['custody'], summary: 'custody backend and vault state (sealed, vault id, share ceremony progress)', security: sec, response: { 200: VaultStatus, ...R } } },
        async (req) => {
          allTenants(req, 'the vault');
          return vault ? vault.status() : { backend: d.custody.backend, initialized: true, sealed: false };
        },
      );
      app.post<{ Body: Static<typeof UnsealBody> }>(
        '/custody/unseal',
        { config: ADMIN, schema: { tags: ['custody'], summary: 'unseal the vault: passphrase + consumed vault_unseal approval, or one share per operator', security: sec, body: UnsealBody, response: { 200: VaultStatus, ...R, 422: Type.Ref('Error') } } },
        async (req) => {
          allTenants(req, 'the vault');
          const v = needVault();
          const ctx = callerContext(req, 'vault unseal');
          const b = req.body;
          return wrap(() => ('share' in b ? v.submitShare(ctx, b.share) : v.unsealWithPassphrase(ctx, b.passphrase, b.approvalId)));
        },
      );
      app.post<{ Body: Static<typeof SealBody> }>(
        '/custody/seal',
        { config: ADMIN, schema: { tags: ['custody'], summary: 'seal the vault: every key is wiped from memory; key operations answer 503 ERR_VAULT_SEALED until unsealed', security: sec, body: SealBody, response: { 200: VaultStatus, ...R, 422: Type.Ref('Error') } } },
        async (req) => {
          allTenants(req, 'the vault');
          return wrap(() => needVault().seal(callerContext(req, 'vault seal'), req.body.reason));
        },
      );
    },
  };
}
