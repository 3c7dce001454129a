// desfire-cms approvals: M-of-N approvals of critical operations through the CMS API.
//
//   approvals list [--state pending|approved|rejected|expired|consumed]
//   approvals show ID                       the full request (what you approve) and its votes
//   approvals approve ID | reject ID        your vote (the requester cannot approve)
//   approvals request --kind key_export|tenant_deletion|vault_unseal --summary TEXT [--field NAME=VALUE ...]
//                     targets: key_export --key NAME --recipient-jwk FILE (its thumbprint is what approvers see)
//                              tenant_deletion --tenant ID · vault_unseal [--vault-id ID] (default: the server's vault)
// Common: --cms https://HOST:PORT --ca FILE [--servername NAME] [--token-file FILE] [--json]
import { type CliIO, type Command, UsageError } from '../io.js';
import { recipientThumbprint } from '../../custody/export.js';
import { readRecipientJwk } from './approvals-ops.js';
import { apiClient, idArg, need, one, parseOpts, show } from './rotation.js';

const line = (a: Record<string, unknown>): string => {
  const votes = (a.votes as { approver: string; decision: string }[] | undefined) ?? [];
  const yes = votes.filter((v) => v.decision === 'approve').length;
  return `${String(a.id)}  ${String(a.kind)}  ${String(a.state)}  ${yes}/${String(a.required)} (${String(a.role)})  by ${String(a.requestedBy)}  expires ${new Date(Number(a.expiresAt)).toISOString()}  "${String(a.summary)}"`;
};

async function run(args: string[], io: CliIO): Promise<number> {
  const o = parseOpts(args);
  const sub = o.pos[0];
  if (!sub || o.bools.has('--help')) {
    io.out('usage: desfire-cms approvals <list|show|approve|reject|request> --cms https://HOST:PORT --ca FILE [options]');
    return sub ? 0 : 2;
  }
  switch (sub) {
    case 'list': {
      const state = one(o, '--state');
      if (state !== undefined && !['pending', 'approved', 'rejected', 'expired', 'consumed'].includes(state)) throw new UsageError('--state must be pending, approved, rejected, expired or consumed');
      return show(io, o, await apiClient(o, io).call('GET', `/v1/approvals${state ? `?state=${state}` : ''}`), (b) => (b.approvals as Record<string, unknown>[]).map(line));
    }
    case 'show':
      return show(io, o, await apiClient(o, io).call('GET', `/v1/approvals/${idArg(o, 1, 'show ID')}`), (a) => [
        line(a),
        `request: ${JSON.stringify(a.payload)}`,
        ...((a.votes as { approver: string; decision: string; at: number }[]) ?? []).map((v) => `  ${v.decision} by ${v.approver} at ${new Date(v.at).toISOString()}`),
      ]);
    case 'approve':
    case 'reject':
      return show(io, o, await apiClient(o, io).call('POST', `/v1/approvals/${idArg(o, 1, `${sub} ID`)}/${sub}`), (a) => [line(a)]);
    case 'request': {
      const kind = need(o, '--kind');
      if (!['key_export', 'tenant_deletion', 'vault_unseal'].includes(kind)) throw new UsageError('--kind must be key_export, tenant_deletion or vault_unseal (KEK rotations and campaigns ask for theirs)');
      const payload: Record<string, string> = {};
      for (const f of o.flags.get('--field') ?? []) {
        const m = /^([A-Za-z][A-Za-z0-9_]{0,63})=(.{0,500})$/.exec(f);
        if (!m) throw new UsageError('--field must be NAME=VALUE');
        payload[m[1]!] = m[2]!;
      }
      const api = apiClient(o, io);
      if (kind === 'key_export') {
        payload.key = one(o, '--key') ?? payload.key ?? '';
        const jwk = one(o, '--recipient-jwk');
        if (jwk) payload.recipient = await recipientThumbprint(readRecipientJwk(io, jwk));
        if (!payload.key || !payload.recipient) throw new UsageError('key_export: give --key NAME and --recipient-jwk FILE');
      } else if (kind === 'tenant_deletion') {
        payload.tenantId = one(o, '--tenant') ?? payload.tenantId ?? '';
        if (!payload.tenantId) throw new UsageError('tenant_deletion: give --tenant ID');
      } else {
        const vaultId = one(o, '--vault-id') ?? payload.vaultId;
        if (vaultId) payload.vaultId = vaultId;
        else {
          const st = await api.call('GET', '/v1/custody/status');
          if (st.status !== 200 || typeof (st.body as { vaultId?: unknown }).vaultId !== 'string') return show(io, o, st);
          payload.vaultId = (st.body as { vaultId: string }).vaultId;
        }
      }
      return show(io, o, await api.call('POST', '/v1/approvals', { kind, payload, summary: need(o, '--summary') }), (a) => [line(a), `request: ${JSON.stringify(a.payload)}`]);
    }
    default:
      throw new UsageError(`unknown subcommand '${sub}'`);
  }
}

export const command: Command = { run };
