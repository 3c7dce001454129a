// desfire-cms compromise: respond to a compromise through the CMS API.
//
//   compromise reader-keys ID        every (tenant, AID, keyNo, version) the reader received (audit log)
//   compromise reader ID             revoke it, block its jobs, compute its key set, propose campaigns (approval needed)
//   compromise card UID [--reason TEXT]   denylist (synced to readers) and suspend
//   compromise kek NAME --approval ID     rotate the KEK (approved `rotation kek request`), rewrap all, propose campaigns
// Common: --cms https://HOST:PORT --ca FILE [--servername NAME] [--token-file FILE] [--json]
import { type CliIO, type Command, UsageError } from '../io.js';
import { apiClient, idArg, need, one, parseOpts, show } from './rotation.js';

type Key = { tenant: string; aid: string; keyNo: number; version: number; deliveries: number; allCards: boolean; uids: string[] };
const keyLine = (k: Key) => `  ${k.tenant}/${k.aid}/key ${k.keyNo} v${k.version}: ${k.deliveries} deliveries, ${k.allCards ? 'ALL cards (master)' : `${k.uids.length} cards`}`;

async function run(args: string[], io: CliIO): Promise<number> {
  const o = parseOpts(args);
  const sub = o.pos[0];
  if (!sub || o.bools.has('--help')) {
    io.out('usage: desfire-cms compromise <reader-keys|reader|card|kek> ID --cms https://HOST:PORT --ca FILE [options]');
    return sub ? 0 : 2;
  }
  switch (sub) {
    case 'reader-keys':
      return show(io, o, await apiClient(o, io).call('GET', `/v1/compromise/readers/${idArg(o, 1, 'reader-keys ID')}/keys`), (b) => (b.keys as Key[]).map(keyLine));
    case 'reader':
      return show(io, o, await apiClient(o, io).call('POST', `/v1/compromise/readers/${idArg(o, 1, 'reader ID')}`), (b) => [
        `case ${String(b.caseId)}: reader ${String(b.readerId)} ${b.revoked ? 'revoked' : 'already revoked'}, ${String(b.jobsBlocked)} jobs blocked`,
        ...(b.keys as Key[]).map(keyLine),
        ...(b.campaigns as Record<string, unknown>[]).map((c) => (c.campaignId ? `  campaign ${String(c.campaignId)} for ${String(c.cards)} cards awaits approval ${String(c.approvalId)}` : `  ${String(c.tenant)}/${String(c.aid)}/key ${String(c.keyNo)}: no campaign (${String(c.skipped)})`)),
      ]);
    case 'card': {
      const uid = o.pos[1];
      if (!uid || !/^([0-9A-Fa-f]{2}){4,10}$/.test(uid)) throw new UsageError('card: give the UID (4..10 bytes of hex)');
      return show(io, o, await apiClient(o, io).call('POST', `/v1/compromise/cards/${uid.toUpperCase()}`, { reason: one(o, '--reason') ?? 'clone suspected' }), (b) => [
        `case ${String(b.caseId)}: ${uid.toUpperCase()} denylisted${b.suspended ? ', suspended' : ''}`,
      ]);
    }
    case 'kek':
      return show(io, o, await apiClient(o, io).call('POST', `/v1/compromise/kek/${encodeURIComponent(idArg(o, 1, 'kek NAME'))}`, { approvalId: need(o, '--approval') }), (b) => [
        `case ${String(b.caseId)}: KEK rotated to version ${String(b.version)}, rewrapped ${String((b.run as { rewrapped: number }).rewrapped)}, failed ${String((b.run as { failed: number }).failed)}`,
        ...(b.census as { kek: string; kekVersion: number; blobs: number }[]).map((c) => `  ${c.kek} v${c.kekVersion}: ${c.blobs} blobs`),
        ...(b.campaigns as Record<string, unknown>[]).map((c) => (c.campaignId ? `  campaign ${String(c.campaignId)} for ${String(c.cards)} cards awaits approval ${String(c.approvalId)}` : `  ${String(c.tenant)}/${String(c.aid)}/key ${String(c.keyNo)}: no campaign (${String(c.skipped)})`)),
      ]);
    default:
      throw new UsageError(`unknown subcommand '${sub}'`);
  }
}

export const command: Command = { run };
