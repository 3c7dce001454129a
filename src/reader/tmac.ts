// Clone check on the EV2 Transaction MAC counter (TMC). An application with a Transaction MAC file
// counts every committed transaction in its TMC, card-side, in the same atomic step as the
// transaction: a genuine card's TMC only grows. The reader reads TMC || TMV (ReadData on the TMAC
// file, its Read right — free in the layouts that have one; reading it is not itself MAC'd, so it
// does not advance the counter) twice and compares with what it saw last for that card and AID,
// through the agent's one clone-counter mechanism (ReaderAgent.checkCounter):
//   before the transaction (no session yet): a TMC below the last one seen after a transaction is
//     an older copy of the card — refused before anything changes on it;
//   after the commit: a TMC that repeats or went back means another card with this one's history
//     has transacted in between.
// Either is flagged ERR_READER_CLONE_SUSPECTED as the loan counter is: `clone-suspected:tmc:N` in
// the transaction's result and the baton. The counter kept (`tmc-next`) is the lowest TMC the
// genuine card may show after its next transaction (last seen after a commit + 1, or seen before
// one + 1), so both checks are the agent's "not below" rule.
//
// A card without the TMAC file (installed before the layout had one) answers FILE_NOT_FOUND: no
// check. Verifying the TMV needs the AppTransactionMACKey, which stays with the backend
// (src/core/sm/tmac.ts transactionMacValue); the reader does not hold it.
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

/** After a commit: the TMC must be above the last one seen for uid + AID; remembered when genuine. */
export function checkTmc(agent: Pick<ReaderAgent, 'checkCounter'>, uid: string, aid: string, tmc: number): boolean {
  if (!agent.checkCounter(uid, aid, TMC_COUNTER, tmc)) return false;
  agent.checkCounter(uid, aid, TMC_COUNTER, tmc + 1);
  return true;
}

/** Before a transaction: the TMC may equal the last one seen after a commit, not be below it. */
export function checkTmcBefore(agent: Pick<ReaderAgent, 'checkCounter'>, uid: string, aid: string, tmc: number): boolean {
  return agent.checkCounter(uid, aid, TMC_COUNTER, tmc + 1);
}

/**
 * Read TMC || TMV from the application's TMAC file and run the clone check for `when`. `comm`: the
 * comm mode the card will use for this read (plain when the file's Read right is free); given
 * explicitly so no GetFileSettings is needed. 'before' runs before authentication, so a missing
 * file's FILE_NOT_FOUND costs no session.
 */
export async function tmacCloneCheck(
  agent: Pick<ReaderAgent, 'checkCounter'>, client: DesfireClient, uid: string, aid: string, fileNo: number,
  when: 'before' | 'after', comm: CommMode = 'plain',
): Promise<TmacCheck> {
  let s: TransactionMacState;
  try {
    s = await client.readTransactionMac(fileNo, { comm });
  } catch (e) {
    if (e instanceof CardStatusError && e.status === Status.FILE_NOT_FOUND) return { kind: 'absent' };
    throw e;
  }
  const ok = when === 'before' ? checkTmcBefore(agent, uid, aid, s.tmc) : checkTmc(agent, uid, aid, s.tmc);
  return { kind: ok ? 'ok' : 'clone', ...s };
}
