// The audit log's alerts over HTTP (for the operator console):
//
//   GET  /v1/alerts[?limit=]             newest first, each with whether (and by whom) it was acknowledged
//   POST /v1/alerts/:id/acknowledge      acknowledge (once); the acknowledgement is itself an audit
//                                        entry (operation 'alert.acknowledge', correlationId = alert id)
//
// Alerts are not tenant-scoped (they name readers and cards across tenants), so both routes need a
// token for every tenant: issuer admins acknowledge, auditors too; tenant-scoped tokens get 403.
// The acknowledgements live in the audit log only (no extra table): tamper-evident like the rest.
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import type { AuditLog } from '../../audit/log.js';
import type { Database } from '../../storage/index.js';
import { actorOf, tenantScope } from '../auth.js';
import { ApiError, ERROR_RESPONSES, forbidden, notFound } from '../errors.js';
import type { ApiModule } from '../ports.js';
import type { Role } from '../tokens/service.js';

export const ALERT_ACK_OPERATION = 'alert.acknowledge';

const sec = [{ apiToken: [] }];
const AUTH = { auth: { operator: ['issuer_admin', 'auditor'] as Role[] } };
const Id = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._:-]+$' }) });

function requireGlobal(req: FastifyRequest): void {
  if (tenantScope(req) !== '*') throw forbidden('alerts span tenants: needs a token for every tenant', 'ERR_FORBIDDEN_TENANT');
}

export function alertsModule(d: { db: Kysely<Database>; audit: AuditLog }): ApiModule {
  const acks = async (ids: string[]) => {
    if (!ids.length) return new Map<string, { actor: string | null; time: number }>();
    const rows = await d.db.selectFrom('audit_entries').select(['correlation_id', 'actor', 'time']).where('operation', '=', ALERT_ACK_OPERATION).where('correlation_id', 'in', ids).execute();
    return new Map(rows.map((r) => [String(r.correlation_id), { actor: r.actor, time: Number(r.time) }]));
  };
  return {
    name: 'alerts',
    register(app: FastifyInstance) {
      app.get<{ Querystring: { limit: number } }>(
        '/alerts',
        {
          config: AUTH,
          schema: {
            tags: ['audit'],
            summary: "the audit log's alerts, newest first, with their acknowledgement",
            security: sec,
            querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 1000, default: 200 }) }, { additionalProperties: false }),
            response: ERROR_RESPONSES,
          },
        },
        async (req) => {
          requireGlobal(req);
          await d.audit.sync();
          const rows = await d.db.selectFrom('audit_alerts').selectAll().orderBy('time', 'desc').orderBy('id').limit(req.query.limit).execute();
          const acked = await acks(rows.map((r) => r.id));
          return {
            alerts: rows.map((r) => {
              const a = acked.get(r.id);
              let details: unknown = null;
              try {
                details = JSON.parse(r.details);
              } catch {
                /* stored as text */
              }
              return {
                id: r.id,
                time: Number(r.time),
                rule: r.rule,
                severity: r.severity,
                subject: r.subject,
                message: r.message,
                details,
                entryIndex: r.entry_idx === null ? null : Number(r.entry_idx),
                acknowledged: a !== undefined,
                acknowledgedBy: a?.actor ?? null,
                acknowledgedAt: a?.time ?? null,
              };
            }),
          };
        },
      );
      app.post<{ Params: { id: string } }>(
        '/alerts/:id/acknowledge',
        { config: AUTH, schema: { tags: ['audit'], summary: 'acknowledge an alert (recorded in the audit log)', security: sec, params: Id, response: { ...ERROR_RESPONSES, 409: Type.Ref('Error') } } },
        async (req) => {
          requireGlobal(req);
          const row = await d.db.selectFrom('audit_alerts').select(['id', 'rule', 'subject']).where('id', '=', req.params.id).executeTakeFirst();
          if (!row) throw notFound('alert');
          if ((await acks([row.id])).has(row.id)) throw new ApiError(409, 'ERR_ALERT_ACKNOWLEDGED', 'the alert is already acknowledged');
          const e = await d.audit.record({ actor: actorOf(req), operation: ALERT_ACK_OPERATION, result: 'ok', correlationId: row.id, details: { rule: row.rule, subject: row.subject } });
          await d.audit.sync();
          return { id: row.id, acknowledged: true, acknowledgedBy: actorOf(req), acknowledgedAt: e.time, entryIndex: e.index };
        },
      );
    },
  };
}
