// Custody key administration: list keys and versions, create, rotate. Metadata only — no route
// ever returns key material (the custody interface offers none for these operations).
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { KeyCustody } from '../../../custody/types.js';
import { tenantScope } from '../auth.js';
import { callerContext } from '../context.js';
import { ApiError, ERROR_RESPONSES } from '../errors.js';

const Name = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' });
const Version = Type.Object({ version: Type.Integer(), state: Type.String(), createdAt: Type.String() });
export const KeyInfoSchema = Type.Object(
  {
    name: Type.String(),
    purpose: Type.String(),
    alg: Type.String(),
    latestVersion: Type.Integer(),
    minDecryptionVersion: Type.Integer(),
    minEncryptionVersion: Type.Integer(),
    versions: Type.Array(Version),
  },
  { $id: 'CustodyKey' },
);
const CreateBody = Type.Union(
  [
    Type.Object({ name: Name, purpose: Type.Literal('wrap') }, { additionalProperties: false }),
    Type.Object({ name: Name, purpose: Type.Literal('diversify'), alg: Type.Union([Type.Literal('aes128'), Type.Literal('2k3des'), Type.Literal('3k3des')]) }, { additionalProperties: false }),
  ],
);
const Params = Type.Object({ name: Name });

/**
 * The tenant a custody key belongs to, from its name: `kek.<tenant>` (the tenant's KEK) and
 * `<tenant>.<AID>.<keyNo>` (an application key's master); anything else (`kek.issuer`, the CA's
 * protector, …) is the issuer's (null).
 */
export function keyOwner(name: string): string | null {
  const kek = /^kek\.([a-z0-9][a-z0-9-]*)$/.exec(name);
  if (kek) return kek[1] === 'issuer' ? null : kek[1]!;
  const app = /^([a-z0-9][a-z0-9-]*)\.[0-9A-Fa-f]{6}\.\d+$/.exec(name);
  return app ? app[1]! : null;
}

/** A tenant-scoped caller sees only its tenants' keys; the issuer's keys need an all-tenant token. */
function visible(req: FastifyRequest, name: string): boolean {
  const scope = tenantScope(req);
  if (scope === '*') return true;
  const owner = keyOwner(name);
  return owner !== null && scope.includes(owner);
}

/** Out of scope answers exactly like a key that does not exist (existence is not disclosed). */
function assertVisible(req: FastifyRequest, name: string): void {
  if (!visible(req, name)) throw new ApiError(404, 'ERR_CUSTODY_UNKNOWN_KEY', `no key '${name}'`);
}

export function custodyRoutes(custody: KeyCustody) {
  return async (app: FastifyInstance) => {
    app.addSchema(KeyInfoSchema);
    const sec = [{ apiToken: [] }];
    app.get(
      '/custody/keys',
      {
        config: { auth: { operator: ['issuer_admin', 'auditor'] } },
        schema: { tags: ['custody'], summary: 'list custody keys (metadata only)', security: sec, response: { 200: Type.Object({ backend: Type.String(), keys: Type.Array(Type.Ref('CustodyKey')) }), ...ERROR_RESPONSES } },
      },
      async (req) => ({ backend: custody.backend, keys: (await custody.listKeys(callerContext(req, 'list custody keys'))).filter((k) => visible(req, k.name)) }),
    );
    app.get<{ Params: Static<typeof Params> }>(
      '/custody/keys/:name',
      {
        config: { auth: { operator: ['issuer_admin', 'auditor'] } },
        schema: { tags: ['custody'], summary: 'one key with its versions', security: sec, params: Params, response: { 200: Type.Ref('CustodyKey'), ...ERROR_RESPONSES } },
      },
      async (req) => {
        assertVisible(req, req.params.name);
        return custody.getKey(callerContext(req, 'get custody key'), req.params.name);
      },
    );
    app.get<{ Params: Static<typeof Params> }>(
      '/custody/keys/:name/versions',
      {
        config: { auth: { operator: ['issuer_admin', 'auditor'] } },
        schema: { tags: ['custody'], summary: 'versions of a key', security: sec, params: Params, response: { 200: Type.Object({ versions: Type.Array(Version) }), ...ERROR_RESPONSES } },
      },
      async (req) => {
        assertVisible(req, req.params.name);
        return { versions: await custody.listVersions(callerContext(req, 'list key versions'), req.params.name) };
      },
    );
    app.post<{ Body: Static<typeof CreateBody> }>(
      '/custody/keys',
      {
        config: { auth: { operator: ['issuer_admin'] } },
        schema: { tags: ['custody'], summary: 'create a key (a KEK for wrapping, or a diversification master)', security: sec, body: CreateBody, response: { 201: Type.Ref('CustodyKey'), ...ERROR_RESPONSES } },
      },
      async (req, reply) => {
        const b = req.body;
        const spec = b.purpose === 'wrap' ? ({ purpose: 'wrap' } as const) : ({ purpose: 'diversify', alg: b.alg } as const);
        return reply.code(201).send(await custody.createKey(callerContext(req, 'create custody key'), b.name, spec));
      },
    );
    app.post<{ Params: Static<typeof Params> }>(
      '/custody/keys/:name/rotate',
      {
        config: { auth: { operator: ['issuer_admin'] } },
        schema: { tags: ['custody'], summary: 'rotate: add a new version (old versions stay usable until retired)', security: sec, params: Params, response: { 200: Type.Ref('CustodyKey'), ...ERROR_RESPONSES } },
      },
      async (req) => custody.rotateKey(callerContext(req, 'rotate custody key'), req.params.name),
    );
  };
}
