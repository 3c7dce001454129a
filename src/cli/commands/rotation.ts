// desfire-cms rotation: key rotation campaigns and KEK rotation through the CMS API (HTTPS,
// operator token from DESFIRE_CMS_TOKEN or --token-file, never argv), plus an offline simulation
// over in-process virtual cards. Long runs show a progress bar on stderr.
//
//   rotation create   --tenant T --aid AID --key-no N [--from V] [--to V] (--all | --card UID ... | --uid-prefix HEX [--card-state S])
//                     [--batch-size N] [--rate N] [--window H-H] [--max-attempts N] [--grace-days D] [--reason TEXT]
//   rotation list | status ID | watch ID [--interval S]
//   rotation start|pause|resume|rollback|complete|cancel ID
//   rotation versions --tenant T --aid AID --key-no N
//   rotation kek census NAME | request NAME [--reason TEXT] | rotate NAME --approval ID | runs | watch RUN | resume RUN
//   rotation simulate --cards N [--torn PCT] [--batch-size N]      (offline: temp SQLite, embedded vault, virtual cards)
// Common (API commands): --cms https://HOST:PORT --ca FILE [--servername NAME] [--token-file FILE] [--json]
import { existsSync, readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { resolve } from 'node:path';
import { type CliIO, type Command, UsageError } from '../io.js';

export interface Opts {
  pos: string[];
  flags: Map<string, string[]>;
  bools: Set<string>;
}

const BOOLS = new Set(['--json', '--all', '--help']);

export function parseOpts(args: string[]): Opts {
  const o: Opts = { pos: [], flags: new Map(), bools: new Set() };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (BOOLS.has(a)) o.bools.add(a);
    else if (a.startsWith('--')) {
      const v = args[++i];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`${a} needs a value`);
      o.flags.set(a, [...(o.flags.get(a) ?? []), v]);
    } else o.pos.push(a);
  }
  return o;
}

export const one = (o: Opts, f: string): string | undefined => {
  const v = o.flags.get(f);
  if (v && v.length > 1) throw new UsageError(`${f} given more than once`);
  return v?.[0];
};
export const need = (o: Opts, f: string): string => {
  const v = one(o, f);
  if (v === undefined) throw new UsageError(`${f} is required`);
  return v;
};
export const intOpt = (o: Opts, f: string, min: number, max: number): number | undefined => {
  const v = one(o, f);
  if (v === undefined) return undefined;
  if (!/^[0-9]{1,10}$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`${f} must be an integer in ${min}..${max}`);
  return Number(v);
};
export const idArg = (o: Opts, index: number, what: string): string => {
  const v = o.pos[index];
  if (!v || !/^[A-Za-z0-9._-]{1,64}$/.test(v)) throw new UsageError(`${what}: give the id`);
  return v;
};

export interface Api {
  call(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
}

export function apiClient(o: Opts, io: CliIO): Api {
  const cms = need(o, '--cms');
  if (!/^https:\/\/[^/]+\/?$/.test(cms)) throw new UsageError('--cms must be https://HOST:PORT');
  const caFile = resolve(io.cwd, need(o, '--ca'));
  if (!existsSync(caFile)) throw new UsageError(`--ca: ${caFile} not found`);
  const tf = one(o, '--token-file');
  const token = tf ? readFileSync(resolve(io.cwd, tf), 'utf8').trim() : io.env.DESFIRE_CMS_TOKEN;
  if (!token) throw new UsageError('no operator token: set DESFIRE_CMS_TOKEN or give --token-file');
  const u = new URL(cms);
  const ca = readFileSync(caFile, 'utf8');
  const servername = one(o, '--servername') ?? (u.hostname === '127.0.0.1' ? 'localhost' : u.hostname);
  return {
    call: (method, path, body) =>
      new Promise((res, rej) => {
        const payload = body === undefined ? undefined : JSON.stringify(body);
        const headers: Record<string, string> = { authorization: `Bearer ${token}` };
        if (payload !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) });
        const req = httpsRequest({ host: u.hostname, port: Number(u.port || 443), method, path, headers, ca, servername }, (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = JSON.parse(text);
            } catch {
              /* not JSON */
            }
            res({ status: r.statusCode ?? 0, body: parsed });
          });
        });
        req.on('error', rej);
        if (payload !== undefined) req.write(payload);
        req.end();
      }),
  };
}

/** Print an API answer: JSON with --json, else one line per field; exit 1 on an API error. */
export function show(io: CliIO, o: Opts, r: { status: number; body: unknown }, line?: (b: Record<string, unknown>) => string[]): number {
  const b = (r.body ?? {}) as Record<string, unknown> & { error?: { code: string; message: string } };
  if (r.status >= 400) {
    io.err(`error ${r.status} ${b.error?.code ?? ''}: ${b.error?.message ?? String(r.body)}`);
    return 1;
  }
  if (o.bools.has('--json') || !line) io.out(JSON.stringify(r.body, null, 2));
  else for (const l of line(b)) io.out(l);
  return 0;
}

/** A one-line progress bar on stderr: [#####.....] 50% 5000/10000 label */
export function progressBar(io: CliIO, done: number, total: number, label = ''): void {
  const w = 30;
  const f = total > 0 ? Math.min(1, done / total) : 1;
  const n = Math.round(f * w);
  io.err(`[${'#'.repeat(n)}${'.'.repeat(w - n)}] ${String(Math.floor(f * 100)).padStart(3)}% ${done}/${total} ${label}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function target(o: Opts): unknown {
  const cards = o.flags.get('--card');
  const prefix = one(o, '--uid-prefix');
  const state = one(o, '--card-state');
  const n = Number(o.bools.has('--all')) + Number(cards !== undefined) + Number(prefix !== undefined || state !== undefined);
  if (n !== 1) throw new UsageError('give exactly one target: --all, --card UID (repeatable), or --uid-prefix/--card-state');
  if (o.bools.has('--all')) return { kind: 'all' };
  if (cards) {
    for (const c of cards) if (!/^([0-9A-Fa-f]{2}){4,10}$/.test(c)) throw new UsageError(`--card: ${c} is not a UID`);
    return { kind: 'list', uids: cards.map((c) => c.toUpperCase()) };
  }
  if (prefix !== undefined && !/^[0-9A-Fa-f]{1,20}$/.test(prefix)) throw new UsageError('--uid-prefix must be hex');
  return { kind: 'query', ...(prefix ? { uidPrefix: prefix.toUpperCase() } : {}), ...(state ? { cardState: state } : {}) };
}

function keyRef(o: Opts): { tenantId: string; aid: string; keyNo: number } {
  const tenantId = need(o, '--tenant');
  const aid = need(o, '--aid');
  if (!/^[0-9A-Fa-f]{6}$/.test(aid)) throw new UsageError('--aid must be 6 hex digits');
  const keyNo = intOpt(o, '--key-no', 0, 13);
  if (keyNo === undefined) throw new UsageError('--key-no is required');
  return { tenantId, aid: aid.toUpperCase(), keyNo };
}

type Totals = { done: number; pending: number; failed: number; reverted: number; cancelled: number };
type P = { campaign: Record<string, unknown>; totals: Totals; batches: Record<string, number>[]; failures: { uid: string; cardVersion: number | null; error: string | null }[] };
const progressLines = (b: Record<string, unknown>): string[] => {
  const p = b as unknown as P;
  const c = p.campaign;
  const out = [
    `${String(c.id)}  ${String(c.state)}  ${String(c.tenantId)}/${String(c.aid)}/key ${String(c.keyNo)}  v${String(c.fromVersion)} -> v${String(c.toVersion)}  ${String(c.cardCount)} cards`,
    `done ${p.totals.done}  pending ${p.totals.pending}  failed ${p.totals.failed}  reverted ${p.totals.reverted}  cancelled ${p.totals.cancelled}`,
  ];
  for (const bt of p.batches) out.push(`  batch ${bt.batch}: done ${bt.done} pending ${bt.pending} failed ${bt.failed}${bt.reverted ? ` reverted ${bt.reverted}` : ''}`);
  for (const f of p.failures) out.push(`  FAILED ${f.uid}: card on version ${f.cardVersion ?? 'unreached'} (${f.error ?? ''})`);
  return out;
};
const campaignLine = (c: Record<string, unknown>) => [`${String(c.id)}  ${String(c.state)}  ${String(c.tenantId)}/${String(c.aid)}/key ${String(c.keyNo)}  v${String(c.fromVersion)} -> v${String(c.toVersion)}  ${String(c.cardCount)} cards${c.approvalId ? `  approval ${String(c.approvalId)}` : ''}`];

async function kek(o: Opts, io: CliIO): Promise<number> {
  const sub = o.pos[1];
  const api = (): Api => apiClient(o, io);
  switch (sub) {
    case 'census':
      return show(io, o, await api().call('GET', `/v1/kek/${encodeURIComponent(idArg(o, 2, 'kek census NAME'))}/census`), (b) => [
        `${String(b.kek)}: latest version ${String(b.latestVersion)}, ${String(b.toRewrap)} blobs to rewrap`,
        ...(b.census as { kekVersion: number; blobs: number }[]).map((c) => `  version ${c.kekVersion}: ${c.blobs} blobs`),
      ]);
    case 'request':
      return show(io, o, await api().call('POST', `/v1/kek/${encodeURIComponent(idArg(o, 2, 'kek request NAME'))}/rotation-requests`, { reason: one(o, '--reason') ?? '' }), (b) => [`approval ${String(b.approvalId)} requested`]);
    case 'rotate':
      return show(io, o, await api().call('POST', `/v1/kek/${encodeURIComponent(idArg(o, 2, 'kek rotate NAME'))}/rotate`, { approvalId: need(o, '--approval') }), (b) => [`rotated to version ${String(b.version)}; rewrap run ${String((b.run as { id: string }).id)} started`]);
    case 'runs':
      return show(io, o, await api().call('GET', '/v1/kek/runs'), (b) => (b.runs as Record<string, unknown>[]).map((r) => `${String(r.id)}  ${String(r.kek)} -> v${String(r.targetVersion)}  ${String(r.state)}  rewrapped ${String(r.rewrapped)} skipped ${String(r.skipped)} failed ${String(r.failed)}`));
    case 'resume':
      return show(io, o, await api().call('POST', `/v1/kek/runs/${idArg(o, 2, 'kek resume RUN')}/resume`), (b) => [`run ${String(b.id)} resumed`]);
    case 'watch': {
      const id = idArg(o, 2, 'kek watch RUN');
      const a = api();
      const first = await a.call('GET', `/v1/kek/runs/${id}`);
      if (first.status >= 400) return show(io, o, first);
      const kekName = String((first.body as { kek: string }).kek);
      const census = (await a.call('GET', `/v1/kek/${encodeURIComponent(kekName)}/census`)).body as { census: { blobs: number }[] };
      const total = census.census.reduce((n, c) => n + c.blobs, 0);
      for (;;) {
        const r = (await a.call('GET', `/v1/kek/runs/${id}`)).body as { state: string; rewrapped: number; skipped: number; failed: number };
        progressBar(io, r.rewrapped + r.skipped + r.failed, total, `rewrap ${kekName}`);
        if (r.state !== 'running') {
          io.out(`run ${id} ${r.state}: rewrapped ${r.rewrapped} skipped ${r.skipped} failed ${r.failed}`);
          return r.failed ? 1 : 0;
        }
        await sleep((intOpt(o, '--interval', 1, 3600) ?? 2) * 1000);
      }
    }
    default:
      throw new UsageError('rotation kek <census|request|rotate|runs|watch|resume>');
  }
}

async function run(args: string[], io: CliIO): Promise<number> {
  const o = parseOpts(args);
  const sub = o.pos[0];
  if (!sub || o.bools.has('--help')) {
    io.out('usage: desfire-cms rotation <create|list|status|watch|start|pause|resume|rollback|complete|cancel|versions|kek|simulate> [options]');
    io.out('  API commands: --cms https://HOST:PORT --ca FILE [--token-file FILE] (or DESFIRE_CMS_TOKEN) [--json]');
    return sub ? 0 : 2;
  }
  switch (sub) {
    case 'create': {
      const window = one(o, '--window');
      let w: { startHour: number; endHour: number } | undefined;
      if (window !== undefined) {
        const m = /^([0-9]{1,2})-([0-9]{1,2})$/.exec(window);
        if (!m || Number(m[1]) > 23 || Number(m[2]) > 24 || m[1] === m[2]) throw new UsageError('--window must be START-END in UTC hours, e.g. 22-6');
        w = { startHour: Number(m[1]), endHour: Number(m[2]) };
      }
      const graceDays = intOpt(o, '--grace-days', 0, 3650);
      const body = {
        ...keyRef(o),
        target: target(o),
        ...(one(o, '--from') !== undefined ? { fromVersion: intOpt(o, '--from', 0, 255) } : {}),
        ...(one(o, '--to') !== undefined ? { toVersion: intOpt(o, '--to', 0, 255) } : {}),
        ...(one(o, '--batch-size') !== undefined ? { batchSize: intOpt(o, '--batch-size', 1, 100_000) } : {}),
        ...(one(o, '--rate') !== undefined ? { rate: intOpt(o, '--rate', 0, 1_000_000) } : {}),
        ...(one(o, '--max-attempts') !== undefined ? { maxAttempts: intOpt(o, '--max-attempts', 1, 100) } : {}),
        ...(graceDays !== undefined ? { graceMs: graceDays * 86_400_000 } : {}),
        ...(w ? { window: w } : {}),
        ...(one(o, '--reason') ? { reason: one(o, '--reason') } : {}),
      };
      return show(io, o, await apiClient(o, io).call('POST', '/v1/rotation/campaigns', body), campaignLine);
    }
    case 'list':
      return show(io, o, await apiClient(o, io).call('GET', '/v1/rotation/campaigns'), (b) => (b.campaigns as Record<string, unknown>[]).flatMap(campaignLine));
    case 'status':
      return show(io, o, await apiClient(o, io).call('GET', `/v1/rotation/campaigns/${idArg(o, 1, 'status ID')}`), progressLines);
    case 'watch': {
      const id = idArg(o, 1, 'watch ID');
      const api = apiClient(o, io);
      for (;;) {
        const r = await api.call('GET', `/v1/rotation/campaigns/${id}`);
        if (r.status >= 400) return show(io, o, r);
        const p = r.body as P;
        const total = p.totals.done + p.totals.pending + p.totals.failed + p.totals.reverted + p.totals.cancelled;
        progressBar(io, total - p.totals.pending, total, `${String(p.campaign.state)} failed ${p.totals.failed}`);
        if (p.totals.pending === 0 || !['running', 'rolling_back'].includes(String(p.campaign.state))) return show(io, o, r, progressLines);
        await sleep((intOpt(o, '--interval', 1, 3600) ?? 2) * 1000);
      }
    }
    case 'start':
    case 'pause':
    case 'resume':
    case 'rollback':
    case 'complete':
    case 'cancel':
      return show(io, o, await apiClient(o, io).call('POST', `/v1/rotation/campaigns/${idArg(o, 1, `${sub} ID`)}/${sub}`), campaignLine);
    case 'versions': {
      const k = keyRef(o);
      return show(io, o, await apiClient(o, io).call('GET', `/v1/key-versions/${encodeURIComponent(k.tenantId)}/${k.aid}/${k.keyNo}`), (b) => [
        `accepted: ${(b.accepted as number[]).join(', ') || '(unmanaged)'}`,
        ...(b.versions as { version: number; state: string; graceUntil: number | null }[]).map((v) => `  v${v.version} ${v.state}${v.graceUntil ? ` until ${new Date(v.graceUntil).toISOString()}` : ''}`),
      ]);
    }
    case 'kek':
      return kek(o, io);
    case 'simulate': {
      const cards = intOpt(o, '--cards', 1, 1_000_000);
      if (cards === undefined) throw new UsageError('--cards is required');
      const torn = intOpt(o, '--torn', 0, 100) ?? 0;
      const batchSize = intOpt(o, '--batch-size', 1, 100_000) ?? 1000;
      const r = await simulateCampaign({ cards, tornPercent: torn, batchSize, onProgress: (d, t, label) => progressBar(io, d, t, label) });
      if (o.bools.has('--json')) io.out(JSON.stringify(r, null, 2));
      else {
        io.out(`${r.cards} cards, ${r.torn} torn mid-ChangeKey: done ${r.done}, failed ${r.failed} (each with its verified version), unknown ${r.unknown}`);
        io.out(`${r.cardsPerSecond.toFixed(0)} cards/s, ${r.serverMsPerCard.toFixed(3)} ms server-side per card`);
      }
      return r.unknown === 0 ? 0 : 1;
    }
    default:
      throw new UsageError(`unknown subcommand '${sub}'`);
  }
}

export interface SimulationResult {
  cards: number;
  torn: number;
  done: number;
  failed: number;
  unknown: number;
  seconds: number;
  cardsPerSecond: number;
  /** CMS-side time per card (planning excluded): runner + storage, without the card executor. */
  serverMsPerCard: number;
  planSeconds: number;
  custodyEvents: number;
}

/**
 * A whole campaign offline: temp SQLite, embedded vault with an AES-128 diversification master,
 * N in-process virtual cards on version 1, `tornPercent` of them torn once mid-ChangeKey (half
 * before, half after the card applied it), run in batches through the shared card step.
 */
export async function simulateCampaign(o: { cards: number; tornPercent: number; batchSize: number; onProgress?: (done: number, total: number, label: string) => void }): Promise<SimulationResult> {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const path = await import('node:path');
  const { VirtualCard } = await import('../../card/index.js');
  const { DesfireClient } = await import('../../core/client/index.js');
  const { fromHex, toHex } = await import('../../core/crypto/bytes.js');
  const { EmbeddedVault } = await import('../../custody/embedded.js');
  const { MemoryVaultStore } = await import('../../custody/store.js');
  const { ApprovalService } = await import('../../cms/approvals/service.js');
  const { DEFAULT_APPROVAL_POLICY } = await import('../../cms/approvals/policy.js');
  const { CampaignService } = await import('../../cms/rotation/campaigns.js');
  const { NO_AUDIT } = await import('../../cms/rotation/audit.js');
  const { CampaignRunner } = await import('../../cms/rotation/runner.js');
  const { openDatabase } = await import('../../cms/storage/index.js');
  const { rotateOneCard } = await import('../../reader/station/rotate.js');

  const dir = mkdtempSync(path.join(tmpdir(), 'desfire-rotation-sim-'));
  const handle = await openDatabase({ kind: 'sqlite', file: path.join(dir, 'cms.sqlite') });
  const vault = await EmbeddedVault.open(new MemoryVaultStore());
  await vault.init({ passphrase: 'simulation only', scrypt: { N: 2 ** 10, r: 8, p: 1 } });
  // simulation only: custody events are counted, not kept (a real deployment's sink is the audit log)
  let custodyEvents = 0;
  const custody = vault.custody({ append: async () => void custodyEvents++ });
  const ctx = { actor: 'simulate', purpose: 'rotation simulation', correlationId: 'sim' };
  const MASTER = 'sim.A1B2C3.0';
  const AID = 'A1B2C3';
  try {
    await custody.createKey(ctx, MASTER, { purpose: 'diversify', alg: 'aes128' });
    const input = (uid: string) => Uint8Array.from([...fromHex(uid), ...fromHex(AID).reverse()]);
    const key = (uid: string, version: number) => custody.exportForCard(ctx, { kind: 'diversified', master: MASTER, masterVersion: version, input: input(uid), binding: { tenant: 'sim', aid: AID, uid, keyNo: 0, version } });
    const db = handle.db;
    const now = Date.now();
    await db.insertInto('tenants').values({ id: 'sim', name: 'simulation', created_at: now }).execute();
    await db.insertInto('applications').values({ aid: AID, tenant_id: 'sim', name: 'sim', key_type: 'aes', key_count: 1, layout_name: 'sim', definition: '{}', created_at: now }).execute();
    const template = VirtualCard.create({ uid: fromHex('04000000000000') }).toImage();
    type Slot = { card: ReturnType<typeof VirtualCard.create>; tear: 'none' | 'before' | 'after' };
    const cards = new Map<string, Slot>();
    const tornEvery = o.tornPercent > 0 ? Math.max(1, Math.round(100 / o.tornPercent)) : 0;
    let torn = 0;
    let rows: { uid: string }[] = [];
    const flushRows = async () => {
      if (!rows.length) return;
      await db.insertInto('cards').values(rows.map(({ uid }) => ({ uid, state: 'active', random_uid: 0, picc_key_version: 1, created_at: now, updated_at: now }))).execute();
      await db.insertInto('card_applications').values(rows.map(({ uid }) => ({ uid, aid: AID, installed_at: now }))).execute();
      await db.insertInto('card_keys').values(rows.map(({ uid }) => ({ uid, aid: AID, key_no: 0, key_version: 1, updated_at: now }))).execute();
      rows = [];
    };
    for (let i = 0; i < o.cards; i++) {
      const uid = '04' + i.toString(16).toUpperCase().padStart(10, '0') + 'C0';
      const k = await key(uid, 1);
      const card = VirtualCard.fromImage({ ...template, uid, apps: [{ aid: AID, keySettings: 0x0f, keyType: 'aes', keys: [{ key: toHex(k), version: 1 }], isoFileIds: false, files: [] }] });
      k.fill(0);
      const tear = tornEvery && i % tornEvery === 0 ? (torn++ % 2 ? 'after' : 'before') : 'none';
      cards.set(uid, { card, tear });
      rows.push({ uid });
      if (rows.length >= 500) await flushRows();
      if (o.onProgress && i % 5000 === 0) o.onProgress(i, o.cards, 'preparing cards');
    }
    await flushRows();
    const approvals = new ApprovalService({ db, audit: NO_AUDIT, policy: { ...DEFAULT_APPROVAL_POLICY, campaignCardThreshold: Number.MAX_SAFE_INTEGER } });
    const campaigns = new CampaignService({ db, audit: NO_AUDIT, approvals, newVersion: async () => (await custody.rotateKey(ctx, MASTER)).latestVersion });
    const t0 = performance.now();
    const c = await campaigns.create({ tenantId: 'sim', aid: AID, keyNo: 0, fromVersion: 1, target: { kind: 'all' }, batchSize: o.batchSize }, 'simulate');
    const planSeconds = (performance.now() - t0) / 1000;
    await campaigns.start(c.id, 'simulate');
    const transport = (uid: string) => ({
      transmit: async (apdu: Uint8Array): Promise<Uint8Array> => {
        const s = cards.get(uid)!;
        if (apdu[1] === 0xc4 && s.tear !== 'none') {
          const mode = s.tear;
          s.tear = 'none';
          if (mode === 'after') s.card.process(apdu);
          s.card.tear();
          throw Object.assign(new Error('card removed from the field'), { code: 'ERR_PCSC_NO_CARD' });
        }
        return s.card.process(apdu);
      },
    });
    let executorMs = 0;
    const runner = new CampaignRunner(
      campaigns,
      {
        rotate: async (req) => {
          const e0 = performance.now();
          try {
            return await rotateOneCard({ present: async (uid) => (cards.has(uid) ? transport(uid) : undefined), key: (job, v) => key(job.uid, v), client: (t) => new DesfireClient(t) }, req);
          } finally {
            executorMs += performance.now() - e0;
          }
        },
      },
      NO_AUDIT,
    );
    let last = 0;
    const t1 = performance.now();
    await runner.run(c.id, {
      onProgress: (p) => {
        if (o.onProgress && p.processed - last >= Math.max(1, Math.floor(o.cards / 20))) {
          last = p.processed;
          o.onProgress(p.done + p.failed, o.cards, `batch ${p.batch} failed ${p.failed}`);
        }
      },
    });
    const ms = performance.now() - t1;
    const p = await campaigns.progress(c.id);
    o.onProgress?.(p.totals.done + p.totals.failed, o.cards, 'finished');
    const unknown = await db.selectFrom('rotation_items').select((eb) => eb.fn.countAll<number>().as('n')).where('campaign_id', '=', c.id).where('card_version', 'is', null).executeTakeFirstOrThrow();
    return {
      cards: o.cards,
      torn,
      done: p.totals.done,
      failed: p.totals.failed,
      unknown: Number(unknown.n),
      seconds: ms / 1000,
      cardsPerSecond: (o.cards / ms) * 1000,
      serverMsPerCard: (ms - executorMs) / o.cards,
      planSeconds,
      custodyEvents,
    };
  } finally {
    await custody.close();
    await handle.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export const command: Command = { run };
