// DESFire CRC32 (JAMCRC: reflected 0xEDB88320, init 0xFFFFFFFF, no final XOR = NOT zlib crc32)
// and ISO/IEC 14443-3 CRC_A (reflected 0x8408, init 0x6363, no final XOR). Both are sent
// little-endian.

const CRC32_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** DESFire CRC32 register value (no final XOR). */
export function crc32DesfireValue(data: Uint8Array, init = 0xffffffff): number {
  let c = init >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC32_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}

/** DESFire CRC32 as the 4 bytes sent on the wire (little-endian). */
export function crc32Desfire(data: Uint8Array): Uint8Array {
  const c = crc32DesfireValue(data);
  return Uint8Array.of(c & 0xff, (c >>> 8) & 0xff, (c >>> 16) & 0xff, (c >>> 24) & 0xff);
}

/** ISO 14443-3 CRC_A register value. Legacy (D40) DESFire secure messaging uses it as "CRC16". */
export function crc16AValue(data: Uint8Array, init = 0x6363): number {
  let c = init & 0xffff;
  for (let i = 0; i < data.length; i++) {
    c ^= data[i]!;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x8408 : c >>> 1;
  }
  return c & 0xffff;
}

/** CRC_A as the 2 bytes sent on the wire (little-endian). */
export function crc16A(data: Uint8Array): Uint8Array {
  const c = crc16AValue(data);
  return Uint8Array.of(c & 0xff, (c >>> 8) & 0xff);
}
