// PICC-level commands: GetVersion, FormatPICC, GetFreeMemory, GetCardUID, SetConfiguration, Read_Sig.
import { decodeConfiguration, encodeFreeMemory } from '../../core/protocol/codecs/misc.js';
import { type VersionPart, versionFrames } from '../../core/protocol/codecs/version.js';
import type { CardContext, Reply, Req } from '../context.js';
import { freeMemory } from '../memory.js';
import type { Profile } from '../model.js';
import { originalitySignature } from '../originality.js';
import { ST, fault } from '../status.js';

/** GetVersion parts per profile (8 KB parts, storage byte 0x1A, ISO 14443-2/3 protocol 05). */
const VERSIONS: Record<Profile, { hardware: VersionPart; software: VersionPart }> = {
  ev1: {
    hardware: { vendorId: 0x04, type: 0x01, subType: 0x01, majorVersion: 0x01, minorVersion: 0x00, storageSize: 0x1a, protocol: 0x05 },
    software: { vendorId: 0x04, type: 0x01, subType: 0x01, majorVersion: 0x01, minorVersion: 0x04, storageSize: 0x1a, protocol: 0x05 },
  },
  ev2: {
    hardware: { vendorId: 0x04, type: 0x01, subType: 0x01, majorVersion: 0x12, minorVersion: 0x00, storageSize: 0x1a, protocol: 0x05 },
    software: { vendorId: 0x04, type: 0x01, subType: 0x01, majorVersion: 0x02, minorVersion: 0x01, storageSize: 0x1a, protocol: 0x05 },
  },
  ev3: {
    hardware: { vendorId: 0x04, type: 0x01, subType: 0x01, majorVersion: 0x33, minorVersion: 0x00, storageSize: 0x1a, protocol: 0x05 },
    software: { vendorId: 0x04, type: 0x01, subType: 0x01, majorVersion: 0x03, minorVersion: 0x00, storageSize: 0x1a, protocol: 0x05 },
  },
};

export function getVersion(ctx: CardContext, req: Req): Reply {
  ctx.fixed(req, 0);
  const s = ctx.state;
  const v = VERSIONS[s.profile];
  // With random ID enabled the card does not reveal its UID here (zeros), only through GetCardUID.
  const uid = s.picc.randomUid ? new Uint8Array(7) : s.uid;
  const frames = versionFrames({ ...v, uid, batchNo: s.batch, productionWeek: s.week, productionYear: s.year });
  const data = new Uint8Array(28);
  data.set(frames[0], 0);
  data.set(frames[1], 7);
  data.set(frames[2], 14);
  return { data, frameSizes: [7, 7, 14] };
}

export function formatPicc(ctx: CardContext, req: Req): Reply {
  ctx.fixed(req, 0);
  if (!ctx.atPicc()) throw fault(ST.AUTHENTICATION_ERROR, 'FormatPICC needs the PICC master key');
  ctx.requireMaster();
  if (ctx.state.picc.formatDisabled) throw fault(ST.PERMISSION_DENIED, 'format disabled by configuration');
  ctx.state.apps.clear();
  ctx.tx.clear();
  ctx.dirty = true;
  return {};
}

export function getFreeMemory(ctx: CardContext, req: Req): Reply {
  ctx.fixed(req, 0);
  return { data: encodeFreeMemory(freeMemory(ctx.state)) };
}

export function getCardUid(ctx: CardContext, req: Req): Reply {
  if (!ctx.session) throw fault(ST.AUTHENTICATION_ERROR, 'GetCardUID needs authentication');
  ctx.fixed(req, 0);
  return { data: ctx.state.uid.slice(), comm: 'full' };
}

export function setConfiguration(ctx: CardContext, req: Req): Reply {
  if (!ctx.atPicc()) throw fault(ST.PERMISSION_DENIED, 'SetConfiguration is a PICC-level command');
  ctx.requireMaster();
  if (req.body.length < 1) throw fault(ST.LENGTH_ERROR, 'SetConfiguration needs an option byte');
  const option = req.body[0]!;
  const plainLength = option === 0x00 ? 1 : option === 0x01 ? 25 : undefined;
  const { data } = ctx.open(req, 1, 'full', plainLength);
  let c;
  try {
    c = decodeConfiguration(option, data);
  } catch {
    throw fault(ST.PARAMETER_ERROR, 'bad configuration');
  }
  const p = ctx.state.picc;
  switch (c.option) {
    case 'picc':
      // Both settings are one-way on a real card.
      if ((p.formatDisabled && !c.disableFormat) || (p.randomUid && !c.randomUid)) throw fault(ST.PERMISSION_DENIED, 'configuration is permanent');
      p.formatDisabled = c.disableFormat;
      p.randomUid = c.randomUid;
      break;
    case 'default-key':
      p.defaultKey = c.key.slice();
      p.defaultKeyVersion = c.keyVersion;
      break;
    case 'ats':
      p.ats = c.ats.slice();
      break;
  }
  ctx.dirty = true;
  return {};
}

export function readSig(ctx: CardContext, req: Req): Reply {
  if (ctx.state.profile === 'ev1') throw fault(ST.ILLEGAL_COMMAND, 'Read_Sig is EV2 and later');
  const addr = ctx.fixed(req, 1);
  if (addr[0] !== 0x00) throw fault(ST.PARAMETER_ERROR, 'Read_Sig address must be 00');
  return { data: originalitySignature(ctx.state.uid), comm: ctx.session ? 'full' : 'plain' };
}

export type Handler = (ctx: CardContext, req: Req) => Reply;

export function profileAtLeast(p: Profile, min: Profile): boolean {
  const order: Profile[] = ['ev1', 'ev2', 'ev3'];
  return order.indexOf(p) >= order.indexOf(min);
}
