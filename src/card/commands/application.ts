// Applications: SelectApplication, CreateApplication, DeleteApplication, GetApplicationIDs, GetDFNames.
import { decodeCreateApplication, encodeApplicationIds } from '../../core/protocol/codecs/application.js';
import type { CardContext, Reply, Req } from '../context.js';
import { appCost, freeMemory } from '../memory.js';
import { type AppState, MAX_APPS, defaultSlot } from '../model.js';
import { ST, fault } from '../status.js';

function readAid(b: Uint8Array): number {
  return b[0]! | (b[1]! << 8) | (b[2]! << 16);
}

/** SelectApplication: always plain; ends authentication and the uncommitted transaction. */
export function selectApplication(ctx: CardContext, req: Req): Reply {
  ctx.resetVolatile();
  if (req.body.length !== 3) throw fault(ST.LENGTH_ERROR, 'SelectApplication takes a 3-byte AID');
  const aid = readAid(req.body);
  if (aid !== 0) {
    const app = ctx.state.apps.get(aid);
    if (!app) throw fault(ST.APPLICATION_NOT_FOUND, 'no such application');
    ctx.selected = app;
  }
  return { comm: 'none' };
}

export function createApplication(ctx: CardContext, req: Req): Reply {
  if (!ctx.atPicc()) throw fault(ST.PERMISSION_DENIED, 'CreateApplication is a PICC-level command');
  const picc = ctx.state.picc;
  if ((picc.keySettings & 0x04) === 0) ctx.requireMaster();
  const n = ctx.paramLength(req);
  if (n !== 5 && (n < 7 || n > 23)) throw fault(ST.LENGTH_ERROR, 'CreateApplication length');
  const body = ctx.fixed(req, n);
  let p;
  try {
    p = decodeCreateApplication(body);
  } catch {
    throw fault(ST.PARAMETER_ERROR, 'bad CreateApplication parameters');
  }
  const apps = ctx.state.apps;
  if (apps.has(p.aid)) throw fault(ST.DUPLICATE_ERROR, 'application exists');
  for (const a of apps.values()) {
    if (p.isoFid !== undefined && a.isoFid === p.isoFid) throw fault(ST.DUPLICATE_ERROR, 'ISO FID in use');
    if (p.dfName && a.dfName && Buffer.from(a.dfName).equals(Buffer.from(p.dfName))) throw fault(ST.DUPLICATE_ERROR, 'DF name in use');
  }
  if (apps.size >= MAX_APPS) throw fault(ST.COUNT_ERROR, 'at most 28 applications');
  if (freeMemory(ctx.state) < appCost(p.keyCount)) throw fault(ST.OUT_OF_EEPROM, 'out of EEPROM');
  const app: AppState = {
    aid: p.aid,
    keySettings: (p.settings.changeKeyAccess << 4) | (body[3]! & 0x0f),
    keyType: p.keyType,
    keys: Array.from({ length: p.keyCount }, () => defaultSlot(picc, p.keyType)),
    ...(p.isoFid !== undefined ? { isoFid: p.isoFid } : {}),
    ...(p.dfName ? { dfName: p.dfName.slice() } : {}),
    isoFileIds: p.isoFileIds,
    files: new Map(),
  };
  apps.set(p.aid, app);
  ctx.dirty = true;
  return {};
}

export function deleteApplication(ctx: CardContext, req: Req): Reply {
  const n = ctx.paramLength(req);
  if (n !== 3) throw fault(ST.LENGTH_ERROR, 'DeleteApplication takes a 3-byte AID');
  const aid = readAid(ctx.fixed(req, 3));
  if (aid === 0) throw fault(ST.PARAMETER_ERROR, 'AID 000000 is the PICC');
  const sel = ctx.selected;
  if (sel) {
    // At application level only that application, with its master key.
    if (sel.aid !== aid) throw fault(ST.PERMISSION_DENIED, 'only the selected application');
    ctx.requireMaster();
  } else if ((ctx.state.picc.keySettings & 0x04) === 0) {
    ctx.requireMaster();
  }
  if (!ctx.state.apps.has(aid)) throw fault(ST.APPLICATION_NOT_FOUND, 'no such application');
  ctx.state.apps.delete(aid);
  ctx.dirty = true;
  if (sel) {
    ctx.tx.clear();
    ctx.selected = undefined;
    return { dropSession: true };
  }
  return {};
}

function requireListing(ctx: CardContext): void {
  if (!ctx.atPicc()) throw fault(ST.PERMISSION_DENIED, 'a PICC-level command');
  if ((ctx.state.picc.keySettings & 0x02) === 0) ctx.requireMaster();
}

export function getApplicationIds(ctx: CardContext, req: Req): Reply {
  requireListing(ctx);
  ctx.fixed(req, 0);
  const aids = [...ctx.state.apps.keys()];
  // A real card sends at most 19 AIDs (57 bytes) per frame.
  return { data: encodeApplicationIds(aids), frameSizes: aids.length > 19 ? [57, 57] : [57] };
}

export function getDfNames(ctx: CardContext, req: Req): Reply {
  requireListing(ctx);
  ctx.fixed(req, 0);
  const apps = [...ctx.state.apps.values()].filter((a) => a.isoFid !== undefined);
  const parts = apps.map((a) => Uint8Array.of(a.aid & 0xff, (a.aid >> 8) & 0xff, a.aid >> 16, a.isoFid! & 0xff, a.isoFid! >> 8, ...(a.dfName ?? [])));
  const data = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    data.set(p, o);
    o += p.length;
  }
  // One application per frame.
  return { data, frameSizes: parts.length ? parts.map((p) => p.length) : [0] };
}
