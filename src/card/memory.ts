// EEPROM accounting for GetFreeMemory and 0x0E (out of EEPROM). The simulator models an 8 KB card
// (storage byte 0x1A in GetVersion) with 7,936 bytes of user memory on a blank card, allocated in
// 32-byte blocks as real cards do:
//   application   32 (AID, settings, FID, DF name) + 25 per key (24 key bytes + version), rounded up
//   every file    32 (header: type, comm mode, access rights, FID) +
//     standard    size                            rounded up to 32
//     backup      2 x (size rounded up to 32)     (the committed copy and the working copy)
//     value       32                              (value, its mirror, limited credit)
//     records     recordSize x maxRecords         rounded up to 32
//     TMAC        32                              (key, version, TMC, TMV, TMRIPrev)
// Real cards differ in details (NXP does not publish its allocator); the model is conservative and
// stable, so a layout that fits here fits a real 8 KB card.
import type { AppState, CardState, FileState } from './model.js';

export const TOTAL_USER_MEMORY = 7936;
export const BLOCK = 32;

export function roundUp(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

export function appCost(nKeys: number): number {
  return roundUp(32 + 25 * nKeys);
}

export function fileCost(f: Pick<FileState, 'type'> & { size?: number; recordSize?: number; maxRecords?: number }): number {
  switch (f.type) {
    case 'std':
      return BLOCK + roundUp(f.size ?? 0);
    case 'backup':
      return BLOCK + 2 * roundUp(f.size ?? 0);
    case 'value':
    case 'tmac':
      return BLOCK + BLOCK;
    case 'linear':
    case 'cyclic':
      return BLOCK + roundUp((f.recordSize ?? 0) * (f.maxRecords ?? 0));
  }
}

export function appUsage(app: AppState): number {
  let n = appCost(app.keys.length);
  for (const f of app.files.values()) n += fileCost(f);
  return n;
}

export function usedMemory(state: CardState): number {
  let n = 0;
  for (const a of state.apps.values()) n += appUsage(a);
  return n;
}

export function freeMemory(state: CardState): number {
  return Math.max(0, TOTAL_USER_MEMORY - usedMemory(state));
}
