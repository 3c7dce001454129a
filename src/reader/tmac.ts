// Clone check on the EV2 Transaction MAC counter (TMC). An application with a Transaction MAC file
// counts every committed transaction in its TMC, card-side, in the same atomic step as the
// transaction: a genuine card's TMC only grows. After its own transaction the reader reads
// TMC || TMV (ReadData on the TMAC file, its Read right — free in the campus layout; reading it is
// not itself MAC'd, so it does not advance the counter) and compares the TMC with what it saw
// last for that card and application: the same value again, or a lower one, means another card
// carrying an older copy of this one's state (a cloned image) has been used — flagged
// ERR_READER_CLONE_SUSPECTED through the agent's one clone-counter mechanism
// (ReaderAgent.checkCounter), recorded in the baton by the transaction as `clone-suspected:tmc:N`.
//
// The counter kept is the lowest TMC the genuine card may show next (last seen + 1), so "not
// above the last one" is checked with the agent's "not below" rule.
//
// A card without the TMAC file (installed before the layout had one) answers FILE_NOT_FOUND: no
// check, the transaction stands. Verifying the TMV needs the AppTransactionMACKey, which stays with
// the backend (src/core/sm/tmac.ts transactionMacValue); the reader does not hold it.
import type { DesfireClient } from '../core/client/client.js';
import { CardStatusError, Status } from '../core/protocol/status.js';
import type { TransactionMacState } from '../core/protocol/codecs/tmac.js';
import type { CommMode } from '../core/sm/types.js';
import type { ReaderAgent } from './agent.js';

export const TMC_COUNTER = 'tmc-next';

export type TmacCheck =
  | { kind: 'absent' }
  | { kind: 'ok'; tmc: number; tmv: Uint8Array }
  | { kind: 'clone'; tmc: number; tmv: Uint8Array };

/** Compare a TMC read from the card with the last one seen for uid + AID; remember it when genuine. */
export function checkTmc(agent: Pick<ReaderAgent, 'checkCounter'>, uid: string, aid: string, tmc: number): boolean {
  if (!agent.checkCounter(uid, aid, TMC_COUNTER, tmc)) return false;
  agent.checkCounter(uid, aid, TMC_COUNTER, tmc + 1);
  return true;
}

/**
 * Read TMC || TMV from the application's TMAC file (after the transaction's commit) and run the
 * clone check. `comm`: the comm mode the card will use for this read (plain when the file's Read
 * right is free, as in the campus layout); given explicitly so no GetFileSettings is needed.
 */
export async function tmacCloneCheck(
  agent: Pick<ReaderAgent, 'checkCounter'>, client: DesfireClient, uid: string, aid: string, fileNo: number, comm: CommMode = 'plain',
): Promise<TmacCheck> {
  let s: TransactionMacState;
  try {
    s = await client.readTransactionMac(fileNo, { comm });
  } catch (e) {
    if (e instanceof CardStatusError && e.status === Status.FILE_NOT_FOUND) return { kind: 'absent' };
    throw e;
  }
  return checkTmc(agent, uid, aid, s.tmc) ? { kind: 'ok', ...s } : { kind: 'clone', ...s };
}
