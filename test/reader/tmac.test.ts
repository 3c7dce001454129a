// The EV2 Transaction MAC counter as the purse's clone check: a virtual card whose purse
// application has a TMAC file, copied (image) and used after the original advanced -> the copy's
// TMC is below one already seen -> clone-suspected in the result and the baton, nothing debited.
// A twin taken at the current TMC, cards without the TMAC file, the counter rules on their own.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { VirtualCard } from '../../src/card/virtual-card.js';
import { DesfireClient } from '../../src/core/client/client.js';
import { generateReaderKeyPair, ReaderUnsealer } from '../../src/custody/sealed.js';
import { ReaderAgent } from '../../src/reader/agent.js';
import { AuditBaton } from '../../src/reader/baton.js';
import { checkTmc, checkTmcBefore } from '../../src/reader/tmac.js';
import { CAMPUS, purseDebit } from '../../src/reader/transactions.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { CAMPUS_ROLES, makeCard, SealingKeySource, type TestCard } from './fixture.js';

const TMK = new Uint8Array(16).fill(0x42);

/** Add the campus purse's TMAC file (file 2, plain, R free, CommitReaderID disabled) to a test card. */
async function addPurseTmac(tc: TestCard): Promise<void> {
  const c = new DesfireClient(tc.transport);
  await c.selectApplication(0xcafe01);
  await c.authenticate(0, tc.keys.CAFE01![0]!, { method: 'ev2' });
  await c.createTransactionMacFile({ fileNo: CAMPUS.purse.tmacFileNo, comm: 'plain', access: { read: 0xe, write: 0xf, readWrite: 0xf, change: 0 }, key: TMK, keyVersion: 1 });
  tc.card.reset();
}

function agentFor(cards: () => TestCard[]) {
  const kp = generateReaderKeyPair();
  const baton = AuditBaton.open(mkdtempSync(join(tmpdir(), 'tmac-')));
  const agent = new ReaderAgent({ readerId: 'till-1', roles: CAMPUS_ROLES, baton, unsealer: new ReaderUnsealer('till-1', kp.privateKey), keys: new SealingKeySource('till-1', kp.publicKey, cards) });
  return { agent, baton };
}

async function tmcOf(card: VirtualCard): Promise<number> {
  const c = new DesfireClient(new InProcessTransport(card));
  await c.selectApplication(0xcafe01);
  return (await c.readTransactionMac(CAMPUS.purse.tmacFileNo, { comm: 'plain' })).tmc;
}

describe('TMAC clone check (purse)', () => {
  it('a copy of the card used after the original advanced is flagged; the baton records it', async () => {
    const tc = await makeCard({ balance: 1000 });
    await addPurseTmac(tc);
    const { agent, baton } = agentFor(() => [tc]);
    expect(await purseDebit(agent, tc.transport, 100)).toMatchObject({ ok: true, result: 'ok:100:900' });
    expect(await tmcOf(tc.card)).toBe(1);
    const copy = tc.card.toImage(); // the cloner's dump, TMC 1
    expect(await purseDebit(agent, tc.transport, 100)).toMatchObject({ ok: true, value: 800 });
    expect(await tmcOf(tc.card)).toBe(2);

    const cloneCard = VirtualCard.fromImage(copy);
    const clone = new InProcessTransport(cloneCard);
    // before any change: the copy's TMC (1) is below what the genuine card showed after its last
    // transaction (2) -> refused, nothing debited
    const r = await purseDebit(agent, clone, 100);
    expect(r).toMatchObject({ ok: false, result: 'clone-suspected:tmc:1', uid: tc.uid });
    expect(baton.all().at(-1)).toMatchObject({ op: 'purse-debit', result: 'clone-suspected:tmc:1', aid: 'CAFE01' });
    expect(JSON.stringify(cloneCard.toImage())).toBe(JSON.stringify(copy));
    // it stays refused; the genuine card goes on
    expect((await purseDebit(agent, clone, 1)).result).toBe('clone-suspected:tmc:1');
    expect(await purseDebit(agent, tc.transport, 1)).toMatchObject({ ok: true, result: 'ok:1:799' });
    agent.close();
  }, 60_000);

  it('a copy taken at the current TMC: whichever card next shows an already-seen TMC is flagged; a card without a TMAC file is not checked', async () => {
    const tc = await makeCard({ balance: 500 });
    await addPurseTmac(tc);
    const plain = await makeCard({ balance: 500 });
    const { agent } = agentFor(() => [tc, plain]);
    expect((await purseDebit(agent, tc.transport, 10)).ok).toBe(true); // TMC 1
    const twin = new InProcessTransport(VirtualCard.fromImage(tc.card.toImage())); // same history
    // The counter shows that two cards share one history, not which one is genuine: the twin
    // transacts first (TMC 2, new to this reader), then the genuine card's TMC 1 is a step back.
    expect(await purseDebit(agent, twin, 10)).toMatchObject({ ok: true, result: 'ok:10:480' });
    expect((await purseDebit(agent, tc.transport, 10)).result).toBe('clone-suspected:tmc:1');
    // the after-commit read records the genuine card's new TMC, so a twin taken before it is refused untouched
    const t2 = new InProcessTransport(VirtualCard.fromImage(tc.card.toImage())); // TMC 1 again
    const { agent: fresh } = agentFor(() => [tc]);
    expect((await purseDebit(fresh, tc.transport, 1)).ok).toBe(true); // genuine: TMC 2
    expect((await purseDebit(fresh, t2, 1)).result).toBe('clone-suspected:tmc:1'); // before: 1 < 2
    expect(await purseDebit(agent, plain.transport, 10)).toMatchObject({ ok: true, result: 'ok:10:490' });
    expect(await purseDebit(agent, plain.transport, 10)).toMatchObject({ ok: true, result: 'ok:10:480' });
    fresh.close();
    agent.close();
  }, 60_000);

  it('checkTmc / checkTmcBefore: after a commit a repeat or a step back fails; before one, only a step back', () => {
    const seen = new Map<string, number>();
    const agent = {
      checkCounter(uid: string, aid: string, name: string, v: number): boolean {
        const k = `${uid}|${aid}|${name}`;
        const last = seen.get(k);
        if (last !== undefined && v < last) return false;
        seen.set(k, v);
        return true;
      },
    };
    expect(checkTmc(agent, 'U1', 'CAFE01', 5)).toBe(true);
    expect(checkTmc(agent, 'U1', 'CAFE01', 6)).toBe(true);
    expect(checkTmc(agent, 'U1', 'CAFE01', 6)).toBe(false);
    expect(checkTmc(agent, 'U1', 'CAFE01', 4)).toBe(false);
    expect(checkTmc(agent, 'U1', 'CAFE01', 9)).toBe(true);
    expect(checkTmc(agent, 'U2', 'CAFE01', 1)).toBe(true);
    expect(checkTmc(agent, 'U1', 'A1C001', 1)).toBe(true);
    expect(checkTmcBefore(agent, 'U1', 'CAFE01', 9)).toBe(true); // seen 9 after a commit: 9 again before one is fine
    expect(checkTmcBefore(agent, 'U1', 'CAFE01', 8)).toBe(false);
    expect(checkTmc(agent, 'U1', 'CAFE01', 10)).toBe(true);
  });
});
