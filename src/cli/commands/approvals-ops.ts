// desfire-cms critical: the operations that run only under a consumed M-of-N approval, through the
// CMS API (ask for the approval with `approvals request`, get it approved by others, then run):
//
//   critical recipient-key --out-private FILE --out-public FILE   a P-256 key pair to export to (private key mode 0600)
//   critical export-key NAME --recipient-jwk FILE --approval ID [--version N] [--out FILE]
//                                               the key sealed (JWE ECDH-ES) to the recipient; --out writes it 0600
//   critical open-export FILE --private-key FILE  recipient side: what the export holds (name, version, alg; never the bytes)
//   critical delete-tenant ID --approval ID [--schedule-removal]   (again, without --approval, once the scheduled removals are done: drops the rows kept for them)
//   critical vault-status
//   critical unseal (--passphrase-file FILE --approval ID | --share-file FILE)   one share per operator
//   critical seal --reason TEXT
// Common (API commands): --cms https://HOST:PORT --ca FILE [--servername NAME] [--token-file FILE] [--json]
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { JWK } from 'jose';
import { openExport, recipientThumbprint } from '../../custody/export.js';
import { type CliIO, type Command, UsageError } from '../io.js';
import { apiClient, idArg, intOpt, need, one, parseOpts, show } from './rotation.js';

const USAGE = 'usage: desfire-cms critical <recipient-key|export-key|open-export|delete-tenant|vault-status|unseal|seal> [options] --cms https://HOST:PORT --ca FILE';

/** A recipient public key file: a P-256 JWK (as written by `recipient-key`). */
export function readRecipientJwk(io: CliIO, file: string): JWK {
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(resolve(io.cwd, file), 'utf8'));
  } catch {
    throw new UsageError(`${file}: not a JSON Web Key file`);
  }
  const k = j as JWK;
  if (typeof j !== 'object' || j === null || k.kty !== 'EC' || k.crv !== 'P-256' || typeof k.x !== 'string' || typeof k.y !== 'string' || k.d !== undefined)
    throw new UsageError(`${file}: must hold a public EC P-256 JWK (kty, crv, x, y; no d)`);
  return { kty: 'EC', crv: 'P-256', x: k.x, y: k.y };
}

const secretFile = (io: CliIO, file: string): string => {
  const v = readFileSync(resolve(io.cwd, file), 'utf8').trim();
  if (!v) throw new UsageError(`${file} is empty`);
  return v;
};

async function run(args: string[], io: CliIO): Promise<number> {
  const scheduleRemoval = args.includes('--schedule-removal');
  const o = parseOpts(args.filter((a) => a !== '--schedule-removal'));
  const sub = o.pos[0];
  if (!sub || o.bools.has('--help')) {
    io.out(USAGE);
    return sub ? 0 : 2;
  }
  switch (sub) {
    case 'recipient-key': {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const j = publicKey.export({ format: 'jwk' }) as JWK;
      const pub: JWK = { kty: 'EC', crv: 'P-256', x: j.x!, y: j.y! };
      writeFileSync(resolve(io.cwd, need(o, '--out-private')), privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, { mode: 0o600, flag: 'wx' });
      writeFileSync(resolve(io.cwd, need(o, '--out-public')), `${JSON.stringify(pub)}\n`, { flag: 'wx' });
      io.out(`recipient thumbprint: ${await recipientThumbprint(pub)}   (name it in the key_export approval: approvals request --kind key_export --key NAME --recipient-jwk FILE)`);
      return 0;
    }
    case 'export-key': {
      const name = o.pos[1];
      if (!name || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name)) throw new UsageError('export-key NAME: give the custody key name');
      const recipient = readRecipientJwk(io, need(o, '--recipient-jwk'));
      const version = intOpt(o, '--version', 1, 1_000_000);
      const out = one(o, '--out');
      const r = await apiClient(o, io).call('POST', `/v1/custody/keys/${name}/export`, { recipient, approvalId: need(o, '--approval'), ...(version !== undefined ? { version } : {}) });
      if (r.status === 200 && out) {
        writeFileSync(resolve(io.cwd, out), `${(r.body as { jwe: string }).jwe}\n`, { mode: 0o600, flag: 'wx' });
        const b = r.body as Record<string, unknown>;
        io.out(`exported ${String(b.key)} v${String(b.version)} (${String(b.alg)}) sealed to ${String(b.recipient)} → ${out}`);
        return 0;
      }
      return show(io, o, r, (b) => [String(b.jwe)]);
    }
    case 'open-export': {
      const file = o.pos[1];
      if (!file) throw new UsageError('open-export FILE: give the export file');
      const key = createPrivateKey(readFileSync(resolve(io.cwd, need(o, '--private-key')), 'utf8'));
      const { material, claim } = await openExport(readFileSync(resolve(io.cwd, file), 'utf8').trim(), key);
      const len = material.length;
      material.fill(0);
      io.out(JSON.stringify({ ...claim, bytes: len }));
      return 0;
    }
    case 'delete-tenant': {
      const id = idArg(o, 1, 'delete-tenant ID');
      const approval = one(o, '--approval');
      const q = new URLSearchParams({ ...(approval ? { approvalId: approval } : {}), ...(scheduleRemoval ? { scheduleRemoval: 'true' } : {}) });
      return show(io, o, await apiClient(o, io).call('DELETE', `/v1/tenants/${id}?${q.toString()}`), (b) =>
        b.purged ? [`tenant ${String(b.tenantId)}: removals done, its remaining rows dropped (${((b.applications as string[]) ?? []).join(', ') || 'no applications'})`] : [
        `tenant ${String(b.tenantId)} deleted (approval ${String(b.approvalId)}): ${String(b.readerRolesRemoved)} reader roles removed, ${String(b.cardsPending)} cards with scheduled removal`,
        `custody keys retired: ${((b.keysRetired as { key: string }[]) ?? []).map((k) => k.key).join(', ') || 'none'}`,
        ...((b.keysFailed as { key: string; code: string }[]) ?? []).map((k) => `  NOT retired: ${k.key} (${k.code})`),
      ]);
    }
    case 'vault-status':
      return show(io, o, await apiClient(o, io).call('GET', '/v1/custody/status'), (b) => [statusLine(b)]);
    case 'unseal': {
      const shareFile = one(o, '--share-file');
      const passFile = one(o, '--passphrase-file');
      if ((shareFile === undefined) === (passFile === undefined)) throw new UsageError('give --share-file FILE, or --passphrase-file FILE with --approval ID');
      const body = shareFile ? { share: secretFile(io, shareFile) } : { passphrase: secretFile(io, passFile!), approvalId: need(o, '--approval') };
      return show(io, o, await apiClient(o, io).call('POST', '/v1/custody/unseal', body), (b) => [statusLine(b)]);
    }
    case 'seal':
      return show(io, o, await apiClient(o, io).call('POST', '/v1/custody/seal', { reason: need(o, '--reason') }), (b) => [statusLine(b)]);
    default:
      throw new UsageError(`unknown subcommand '${sub}'`);
  }
}

function statusLine(b: Record<string, unknown>): string {
  const shares = b.sealType === 'shamir' ? `  shares ${String(b.progress ?? 0)}/${String(b.threshold)}${(b.submittedBy as string[] | undefined)?.length ? ` from ${(b.submittedBy as string[]).join(', ')}` : ''}` : '';
  return `${String(b.backend)} vault ${b.vaultId ? String(b.vaultId) + ' ' : ''}${b.sealed ? 'SEALED' : 'unsealed'}${b.sealType ? ` (${String(b.sealType)})` : ''}${shares}`;
}

export const command: Command = { run };
