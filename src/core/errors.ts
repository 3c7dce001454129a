// The core's error classes. Every error has a stable `code` (a string, never renamed) so callers
// and the HTTP API can switch on it; messages never contain key bytes.

export class DesfireError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A MAC, CRC or padding check failed. Data under a bad MAC is never returned. */
export class IntegrityError extends DesfireError {
  constructor(message: string) {
    super('ERR_INTEGRITY', message);
  }
}

/** A frame or field is malformed: truncated, overlong, wrong length, bad value. */
export class FrameError extends DesfireError {
  constructor(message: string) {
    super('ERR_FRAME', message);
  }
}

/** Authentication failed on the host side (e.g. the card's RndA' does not match). */
export class AuthenticationError extends DesfireError {
  constructor(message: string) {
    super('ERR_AUTHENTICATION', message);
  }
}

/** An operation needs an authenticated session and there is none (or of the wrong kind). */
export class SessionError extends DesfireError {
  constructor(message: string) {
    super('ERR_SESSION', message);
  }
}
