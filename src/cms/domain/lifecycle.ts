// Card and reader lifecycles: the states and the only transitions allowed. Pure.
import { DomainError } from './errors.js';

export const CARD_STATES = ['blank', 'issued', 'active', 'suspended', 'revoked', 'destroyed'] as const;
export type CardState = (typeof CARD_STATES)[number];

/**
 * blank → issued (CMK personalised, receipt verified) → active (handed out) ⇄ suspended;
 * issued/active/suspended → revoked (blocklisted, keys no longer delivered) → destroyed.
 * A blank card may be destroyed directly (never personalised). destroyed is terminal.
 */
export const CARD_TRANSITIONS: Readonly<Record<CardState, readonly CardState[]>> = {
  blank: ['issued', 'destroyed'],
  issued: ['active', 'revoked'],
  active: ['suspended', 'revoked'],
  suspended: ['active', 'revoked'],
  revoked: ['destroyed'],
  destroyed: [],
};

export const READER_STATES = ['active', 'suspended', 'revoked'] as const;
export type ReaderState = (typeof READER_STATES)[number];

/** Readers: active ⇄ suspended; either → revoked (terminal: a revoked reader is never re-enrolled). */
export const READER_TRANSITIONS: Readonly<Record<ReaderState, readonly ReaderState[]>> = {
  active: ['suspended', 'revoked'],
  suspended: ['active', 'revoked'],
  revoked: [],
};

export function isCardState(s: unknown): s is CardState {
  return typeof s === 'string' && (CARD_STATES as readonly string[]).includes(s);
}

export function isReaderState(s: unknown): s is ReaderState {
  return typeof s === 'string' && (READER_STATES as readonly string[]).includes(s);
}

export function checkCardTransition(from: CardState, to: CardState): void {
  if (!CARD_TRANSITIONS[from].includes(to))
    throw new DomainError('ERR_DOMAIN_TRANSITION', `card cannot go from ${from} to ${to}`, { from, to });
}

export function checkReaderTransition(from: ReaderState, to: ReaderState): void {
  if (!READER_TRANSITIONS[from].includes(to))
    throw new DomainError('ERR_DOMAIN_TRANSITION', `reader cannot go from ${from} to ${to}`, { from, to });
}

/** Card states in which the card's keys may be delivered and its applications used. */
export const CARD_USABLE: readonly CardState[] = ['active'];
/** Card states in which applications may be installed or deleted by a station. */
export const CARD_INSTALLABLE: readonly CardState[] = ['issued', 'active'];
