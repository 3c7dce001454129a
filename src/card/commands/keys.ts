// Keys: GetKeySettings, ChangeKeySettings, GetKeyVersion, ChangeKey (cryptograms: src/core/sm/changekey.ts).
import { openChangeKeyPayload } from '../../core/sm/changekey.js';
import { APP_KEY_TYPE_BITS, encodeKeySettingsResponse } from '../../core/protocol/codecs/keySettings.js';
import { encodeKeyVersion } from '../../core/protocol/codecs/misc.js';
import { wipe } from '../../core/crypto/bytes.js';
import type { CardContext, Reply, Req } from '../context.js';
import { type KeySlot, type StoredKeyType, storedKey } from '../model.js';
import { ST, fault } from '../status.js';

/** The key table of the current level: the PICC master key or the selected application's keys. */
function level(ctx: CardContext): { settings: number; type: StoredKeyType; keys: KeySlot[] } {
  const app = ctx.selected;
  if (app) return { settings: app.keySettings, type: app.keyType, keys: app.keys };
  const p = ctx.state.picc;
  return { settings: p.keySettings, type: p.keyType, keys: [p.key] };
}

export function getKeySettings(ctx: CardContext, req: Req): Reply {
  const l = level(ctx);
  if ((l.settings & 0x02) === 0) ctx.requireMaster();
  ctx.fixed(req, 0);
  return { data: encodeKeySettingsResponse({ settings: l.settings, keyCount: l.keys.length, keyType: l.type }) };
}

export function changeKeySettings(ctx: CardContext, req: Req): Reply {
  ctx.requireMaster();
  const l = level(ctx);
  if ((l.settings & 0x08) === 0) throw fault(ST.PERMISSION_DENIED, 'configuration not changeable');
  const { data } = ctx.open(req, 0, 'full', 1);
  if (data.length !== 1) throw fault(ST.LENGTH_ERROR, 'one key settings byte');
  const s = data[0]!;
  if (ctx.selected) ctx.selected.keySettings = s;
  else {
    if (s >> 4 !== 0) throw fault(ST.PARAMETER_ERROR, 'PICC key settings have no change-key nibble');
    ctx.state.picc.keySettings = s;
  }
  ctx.dirty = true;
  return {};
}

export function getKeyVersion(ctx: CardContext, req: Req): Reply {
  if (ctx.paramLength(req) !== 1) throw fault(ST.LENGTH_ERROR, 'GetKeyVersion takes a key number');
  const keyNo = ctx.fixed(req, 1)[0]!;
  const l = level(ctx);
  const k = ctx.selected ? keyNo : keyNo & 0x3f;
  const slot = l.keys[k];
  if (!slot) throw fault(ST.NO_SUCH_KEY, 'no such key');
  return { data: encodeKeyVersion(slot.version) };
}

/**
 * ChangeKey. Rights: the master key itself needs authentication with it and bit 0 (changeable);
 * another key needs the key named by the settings' high nibble (0..D), the key itself (E), or is
 * frozen (F). At PICC level the key number carries the new key type (0x40 3K3DES, 0x80 AES).
 */
export function changeKey(ctx: CardContext, req: Req): Reply {
  const session = ctx.session;
  if (!session) throw fault(ST.AUTHENTICATION_ERROR, 'ChangeKey needs authentication');
  if (req.body.length < 1) throw fault(ST.LENGTH_ERROR, 'ChangeKey without a key number');
  const app = ctx.selected;
  const l = level(ctx);
  const raw = req.body[0]!;
  const keyNo = app ? raw : raw & 0x3f;
  if (app && raw > 0x0d) throw fault(ST.NO_SUCH_KEY, 'no such key');
  if (!app && (raw & 0xc0) === 0xc0) throw fault(ST.PARAMETER_ERROR, 'bad key type flags');
  const slot = l.keys[keyNo];
  if (!slot) throw fault(ST.NO_SUCH_KEY, 'no such key');
  const auth = session.keyNo;
  if (keyNo === 0 || !app) {
    if (auth !== 0) throw fault(ST.PERMISSION_DENIED, 'the master key changes itself');
    if ((l.settings & 0x01) === 0) throw fault(ST.PERMISSION_DENIED, 'master key not changeable');
  } else {
    const nib = l.settings >> 4;
    if (nib === 0x0f) throw fault(ST.PERMISSION_DENIED, 'keys frozen');
    const needed = nib === 0x0e ? keyNo : nib;
    if (auth !== needed) throw fault(ST.PERMISSION_DENIED, 'not the key that may change this key');
  }
  const oldType = l.type === 'des' ? '2k3des' : l.type;
  req.opened = true;
  const opened = openChangeKeyPayload(session, req.body, {
    ...(app ? { newKeyType: l.type } : { picc: true }),
    oldKey: slot.key,
    oldKeyType: oldType,
  });
  const st = storedKey(opened.newKeyType, opened.newKey);
  wipe(opened.newKey);
  if (app && st.type !== l.type) throw fault(ST.PARAMETER_ERROR, 'key type is fixed at CreateApplication');
  wipe(slot.key);
  slot.key = st.key;
  slot.version = opened.version;
  if (!app) ctx.state.picc.keyType = st.type;
  ctx.dirty = true;
  if (opened.sameKey) {
    // The session's key is gone: the card answers without a MAC and ends the session.
    ctx.dropSession();
    return { comm: 'none' };
  }
  return { comm: 'mac' };
}

export { APP_KEY_TYPE_BITS };
