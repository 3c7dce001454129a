// EV2 Transaction MAC (TMAC): the Transaction MAC Input (TMI) a card collects over one
// transaction, the Transaction MAC Value (TMV) it computes at CommitTransaction, and the
// encryption of the previous transaction's reader ID (EncTMRI). Both sides use it: the virtual
// card to produce TMC/TMV, a backend holding the AppTransactionMACKey to verify them.
//
// Rules as the public DESFire Light data sheet (MF2DLHX0 §10.3) and NXP's public reader library
// describe them (EV2 follows the same scheme for AES applications):
//   SesTMMACKey / SesTMENCKey = tmacSessionKeys(AppTMKey, UID, TMC)   (derived with TMC+1)
//   TMV = MACt(SesTMMACKey, TMI): AES-CMAC with zero IV, truncated to the odd-indexed bytes
//   EncTMRI = AES(SesTMENCKey, TMRIPrev)  (CBC with a zero IV over one block, no padding)
// Every TMI entry is `Cmd || parameters || ZeroPadding || [data || ZeroPadding]`, the padding
// bringing the TMI to a multiple of 16 bytes after the parameters and again after the data:
//   ReadData / WriteData        Cmd FileNo Offset(3) Length(3) | Data      (Length: bytes actually read)
//   ReadRecords / WriteRecord   Cmd FileNo Offset(3) Length(3) | Data      (ReadRecords: records actually read)
//   GetValue / Credit / Debit / LimitedCredit   Cmd FileNo Value(4)       (GetValue: the value returned)
//   ClearRecordFile             Cmd FileNo
//   CommitReaderID              Cmd TMRICur [EncTMRI when authenticated]
// Data is always the plain data (no MAC, CRC, padding or chaining overhead).
import { concat } from '../crypto/bytes.js';
import { BlockCipher, CryptoInputError } from '../crypto/cipher.js';
import { Cmac } from '../crypto/cmac.js';
import { tmacSessionKeys } from '../auth/sessionkeys.js';
import { truncateOdd } from './ev2.js';

const EMPTY = new Uint8Array(0);

function zeroPad16(b: Uint8Array): Uint8Array {
  const rem = b.length % 16;
  if (rem === 0) return b;
  const out = new Uint8Array(b.length + 16 - rem);
  out.set(b);
  return out;
}

/** One TMI entry: Cmd || params || ZeroPadding || data || ZeroPadding. */
export function tmiEntry(cmd: number, params: Uint8Array, data: Uint8Array = EMPTY): Uint8Array {
  const head = new Uint8Array(1 + params.length);
  head[0] = cmd;
  head.set(params, 1);
  return concat(zeroPad16(head), zeroPad16(data));
}

/** The Transaction MAC Input of one transaction (empty until the first data command). */
export class TransactionMacInput {
  private parts: Uint8Array[] = [];
  private len = 0;

  get empty(): boolean {
    return this.len === 0;
  }

  get length(): number {
    return this.len;
  }

  add(cmd: number, params: Uint8Array, data?: Uint8Array): void {
    const e = tmiEntry(cmd, params, data);
    this.parts.push(e);
    this.len += e.length;
  }

  bytes(): Uint8Array {
    return concat(...this.parts);
  }

  clear(): void {
    this.parts = [];
    this.len = 0;
  }
}

const TMAC_KEY_LABEL = new TextEncoder().encode('desfire-cms TMAC key');

/**
 * The AppTransactionMACKey of a layout's TMAC file, from the application key with role 'tmac'
 * (NIST SP 800-108 counter mode, one block, PRF AES-CMAC): CMAC(K, 01 || label || 00 || 0080).
 * A separate key, not the slot key itself: the slot key authenticates, the derived one only MACs.
 * This derivation is desfire-cms's own convention (the data sheet leaves the key's origin open).
 */
export function deriveTmacKey(appKey: Uint8Array): Uint8Array {
  if (appKey.length !== 16) throw new CryptoInputError('the TMAC key is derived from a 16-byte AES key');
  const c = new Cmac('aes', appKey);
  try {
    return c.mac(concat(Uint8Array.of(0x01), TMAC_KEY_LABEL, Uint8Array.of(0x00, 0x00, 0x80)));
  } finally {
    c.destroy();
  }
}

function checkTmKey(tmKey: Uint8Array): void {
  if (tmKey.length !== 16) throw new CryptoInputError('an AppTransactionMACKey is a 16-byte AES key');
}

/**
 * TMV of a transaction: MACt(SesTMMACKey, TMI). `tmc` is the counter BEFORE the commit (the card
 * stores tmc + 1 with this TMV).
 */
export function transactionMacValue(tmKey: Uint8Array, uid: Uint8Array, tmc: number, tmi: Uint8Array): Uint8Array {
  checkTmKey(tmKey);
  if (tmi.length === 0 || tmi.length % 16 !== 0) throw new CryptoInputError('a TMI is a non-empty multiple of 16 bytes');
  const keys = tmacSessionKeys(tmKey, uid, tmc);
  const c = new Cmac('aes', keys.mac);
  try {
    return truncateOdd(c.mac(tmi));
  } finally {
    c.destroy();
    keys.mac.fill(0);
    keys.enc.fill(0);
  }
}

function tmriCipher(tmKey: Uint8Array, uid: Uint8Array, tmc: number, block: Uint8Array, encrypt: boolean): Uint8Array {
  checkTmKey(tmKey);
  if (block.length !== 16) throw new CryptoInputError('a TMRI is 16 bytes');
  const keys = tmacSessionKeys(tmKey, uid, tmc);
  const c = new BlockCipher('aes', keys.enc);
  try {
    return encrypt ? c.ecbEncrypt(block) : c.ecbDecrypt(block);
  } finally {
    c.destroy();
    keys.mac.fill(0);
    keys.enc.fill(0);
  }
}

/** EncTMRI = E(SesTMENCKey, TMRIPrev) for the transaction after counter `tmc`. */
export function encryptTmri(tmKey: Uint8Array, uid: Uint8Array, tmc: number, tmriPrev: Uint8Array): Uint8Array {
  return tmriCipher(tmKey, uid, tmc, tmriPrev, true);
}

/** TMRIPrev from EncTMRI (what a backend holding the AppTransactionMACKey does). */
export function decryptTmri(tmKey: Uint8Array, uid: Uint8Array, tmc: number, encTmri: Uint8Array): Uint8Array {
  return tmriCipher(tmKey, uid, tmc, encTmri, false);
}
