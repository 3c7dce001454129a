// Typed errors of the layout module. Stable codes; every issue carries its place in the file.
import type { SourcePos } from './types.js';

export interface LayoutIssue extends SourcePos {
  message: string;
}

export type LayoutErrorCode =
  | 'ERR_LAYOUT_SYNTAX' // not well-formed YAML/JSON
  | 'ERR_LAYOUT_SCHEMA' // does not match schemas/layout.schema.json
  | 'ERR_LAYOUT_INVALID' // matches the schema but is inconsistent (duplicate AID, unknown role, ...)
  | 'ERR_LAYOUT_TOO_LARGE'
  | 'ERR_LAYOUT_UNREADABLE';

/** A layout file could not be read into a Layout. Nothing of it is returned (no partial state). */
export class LayoutError extends Error {
  readonly code: LayoutErrorCode;
  readonly issues: LayoutIssue[];
  constructor(code: LayoutErrorCode, issues: LayoutIssue[], source?: string) {
    const first = issues[0];
    const where = first ? formatPos(first, source) : (source ?? 'layout');
    super(`${where}: ${first?.message ?? code}${issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''}`);
    this.code = code;
    this.issues = issues;
    this.name = 'LayoutError';
  }
}

export function formatPos(p: SourcePos, source?: string): string {
  const file = source ? `${source}:` : '';
  const lc = p.line !== undefined ? `${p.line}:${p.col ?? 1}` : '';
  return `${file}${lc}${lc ? ' ' : ''}${p.pointer || '/'}`;
}
