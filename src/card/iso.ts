// ISO/IEC 7816-4 SELECT (CLA 00, INS A4), which DESFire EV1+ answers next to its native commands and
// which many PC/SC applications send first: select by DF name (P1 04) — the PICC's own name
// D2 76 00 00 85 01 00 or an application's DF name — or by file identifier (P1 00) of an
// application created with an ISO FID. Like SelectApplication it ends authentication and the
// uncommitted transaction. Status words: 90 00, 6A 82 (not found), 6A 86 (P1/P2), 67 00 (length),
// 6D 00 for any other ISO instruction.
import type { CardContext } from './context.js';

export const PICC_DF_NAME = Uint8Array.of(0xd2, 0x76, 0x00, 0x00, 0x85, 0x01, 0x00);

const SW = (a: number, b: number) => Uint8Array.of(a, b);

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export function isoCommand(ctx: CardContext, apdu: Uint8Array): Uint8Array {
  if (apdu.length < 4) return SW(0x67, 0x00);
  if (apdu[1] !== 0xa4) return SW(0x6d, 0x00);
  const p1 = apdu[2]!;
  const p2 = apdu[3]!;
  if ((p1 !== 0x04 && p1 !== 0x00) || (p2 & ~0x0c) !== 0) return SW(0x6a, 0x86);
  if (apdu.length < 6) return SW(0x67, 0x00);
  const lc = apdu[4]!;
  if (lc === 0 || (apdu.length !== 5 + lc && apdu.length !== 6 + lc)) return SW(0x67, 0x00);
  const data = apdu.subarray(5, 5 + lc);
  ctx.resetVolatile();
  if (p1 === 0x04) {
    if (same(data, PICC_DF_NAME)) return SW(0x90, 0x00);
    for (const app of ctx.state.apps.values()) {
      if (app.dfName && same(app.dfName, data)) {
        ctx.selected = app;
        return SW(0x90, 0x00);
      }
    }
    return SW(0x6a, 0x82);
  }
  if (data.length !== 2) return SW(0x67, 0x00);
  const fid = (data[0]! << 8) | data[1]!;
  if (fid === 0x3f00) return SW(0x90, 0x00);
  for (const app of ctx.state.apps.values()) {
    if (app.isoFid === fid) {
      ctx.selected = app;
      return SW(0x90, 0x00);
    }
  }
  return SW(0x6a, 0x82);
}
