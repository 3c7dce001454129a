// Read_Sig: the originality signature, as NXP computes it: ECDSA over secp224r1 of the 7-byte UID,
// the UID used directly as the message representative (no hash), r || s, 28 bytes each.
//
// The simulator has ITS OWN originality key pair (NXP's private key is, of course, not public).
// The private key is derived from a fixed public string, so it is NOT a secret: it only lets
// readers tell "a card made by this simulator" from anything else, and the public key is printed
// in docs/virtual-card.md so readers can verify signatures exactly as they verify NXP's.
// k is derived deterministically from the key and the UID (HMAC-SHA-256), so a card's signature
// is constant, as on a real card (signed once at production).
import { createHash, createHmac } from 'node:crypto';

const P = 0xffffffffffffffffffffffffffffffff000000000000000000000001n;
const A = P - 3n;
const N = 0xffffffffffffffffffffffffffff16a2e0b8f03e13dd29455c5c2a3dn;
const G: Point = {
  x: 0xb70e0cbd6bb4bf7f321390b94a03c1d356c21122343280d6115c1d21n,
  y: 0xbd376388b5f723fb4c22dfe6cd4375a05a07476444d5819985007e34n,
};

interface Point {
  x: bigint;
  y: bigint;
}

function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

function inv(a: bigint, m: bigint): bigint {
  // Extended Euclid.
  let [r0, r1] = [mod(a, m), m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return mod(s0, m);
}

function add(p: Point | undefined, q: Point | undefined): Point | undefined {
  if (!p) return q;
  if (!q) return p;
  let l: bigint;
  if (p.x === q.x) {
    if (mod(p.y + q.y, P) === 0n) return undefined;
    l = mod((3n * p.x * p.x + A) * inv(2n * p.y, P), P);
  } else {
    l = mod((q.y - p.y) * inv(q.x - p.x, P), P);
  }
  const x = mod(l * l - p.x - q.x, P);
  return { x, y: mod(l * (p.x - x) - p.y, P) };
}

function mul(k: bigint, pt: Point): Point | undefined {
  let r: Point | undefined;
  let q: Point | undefined = pt;
  while (k > 0n) {
    if (k & 1n) r = add(r, q);
    q = add(q, q);
    k >>= 1n;
  }
  return r;
}

function toBig(b: Uint8Array): bigint {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

function toBytes(v: bigint, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** The simulator's originality private scalar (public by design, see the header). */
const D = mod(toBig(createHash('sha256').update('desfire-cms virtual card originality key v1').digest()), N - 1n) + 1n;

let publicKey: Uint8Array | undefined;

/** The simulator's originality public key, uncompressed: 04 || X(28) || Y(28). */
export function originalityPublicKey(): Uint8Array {
  if (!publicKey) {
    const q = mul(D, G)!;
    publicKey = Uint8Array.of(0x04, ...toBytes(q.x, 28), ...toBytes(q.y, 28));
  }
  return publicKey.slice();
}

function messageRep(msg: Uint8Array): bigint {
  // ECDSA's e: the leftmost 224 bits of the message (a 7-byte UID is taken whole).
  let e = toBig(msg);
  const excess = msg.length * 8 - 224;
  if (excess > 0) e >>= BigInt(excess);
  return e;
}

const cache = new Map<string, Uint8Array>();

/** The originality signature of a UID: r || s (56 bytes). */
export function originalitySignature(uid: Uint8Array): Uint8Array {
  const id = Buffer.from(uid).toString('hex');
  const hit = cache.get(id);
  if (hit) return hit.slice();
  const e = messageRep(uid);
  for (let ctr = 0; ; ctr++) {
    const h = createHmac('sha256', Buffer.from(toBytes(D, 28))).update(uid).update(Uint8Array.of(ctr)).digest();
    const k = mod(toBig(h), N);
    if (k === 0n) continue;
    const r = mod(mul(k, G)!.x, N);
    if (r === 0n) continue;
    const s = mod(inv(k, N) * (e + r * D), N);
    if (s === 0n) continue;
    const sig = Uint8Array.of(...toBytes(r, 28), ...toBytes(s, 28));
    cache.set(id, sig);
    return sig.slice();
  }
}

/** Verify an originality signature against a public key (04 || X || Y), as a reader does. */
export function verifyOriginality(uid: Uint8Array, sig: Uint8Array, pub: Uint8Array = originalityPublicKey()): boolean {
  if (sig.length !== 56 || pub.length !== 57 || pub[0] !== 0x04) return false;
  const r = toBig(sig.subarray(0, 28));
  const s = toBig(sig.subarray(28));
  if (r <= 0n || r >= N || s <= 0n || s >= N) return false;
  const q = { x: toBig(pub.subarray(1, 29)), y: toBig(pub.subarray(29)) };
  const w = inv(s, N);
  const pt = add(mul(mod(messageRep(uid) * w, N), G), mul(mod(r * w, N), q));
  return pt !== undefined && mod(pt.x, N) === r;
}
