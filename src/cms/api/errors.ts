// The API's one error model: every error response is
//   { "error": { "code": "ERR_…", "message": "…", "details": … } }
// with a stable code. Bad input is always a 4xx; a 5xx means a bug or a dependency down, and its
// message never carries internals.
import { Type } from '@sinclair/typebox';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { maskSecrets, scrub } from './logging.js';

export class ApiError extends Error {
  readonly statusCode: number;
  readonly code: string;
  readonly details?: unknown;
  constructor(statusCode: number, code: string, message: string, details?: unknown) {
    super(message);
    this.name = 'ApiError';
    this.statusCode = statusCode;
    this.code = code;
    if (details !== undefined) this.details = details;
  }
}

export const badRequest = (message: string, details?: unknown) => new ApiError(400, 'ERR_BAD_REQUEST', message, details);
export const unauthorized = (message = 'authentication required') => new ApiError(401, 'ERR_UNAUTHENTICATED', message);
export const forbidden = (message = 'not allowed', code = 'ERR_FORBIDDEN') => new ApiError(403, code, message);
export const notFound = (what: string) => new ApiError(404, 'ERR_NOT_FOUND', `${what} not found`);
export const conflict = (message: string, code = 'ERR_CONFLICT') => new ApiError(409, code, message);

export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'stable error code, e.g. ERR_VALIDATION' }),
      message: Type.String(),
      details: Type.Optional(Type.Unknown()),
    }),
  },
  { $id: 'Error', description: 'every error response' },
);

/** Standard error responses for route schemas. */
export const ERROR_RESPONSES = {
  400: Type.Ref('Error'),
  401: Type.Ref('Error'),
  403: Type.Ref('Error'),
  404: Type.Ref('Error'),
  429: Type.Ref('Error'),
} as const;

/**
 * Errors raised by the domain layers carry a stable `code`; the ones that mean "bad input" or
 * "state does not allow it" map to a 4xx here. Codes not listed (and errors without a code) are
 * 500 ERR_INTERNAL with a generic message.
 */
const DOMAIN_STATUS: [RegExp, number][] = [
  [/^ERR_(.*_)?NOT_FOUND$|^ERR_(.*_)?UNKNOWN(_.*)?$/, 404],
  [/^ERR_(.*_)?(CONFLICT|EXISTS|DUPLICATE|TRANSITION|STATE)(_.*)?$/, 409],
  [/^ERR_(.*_)?(FORBIDDEN|DENIED|NOT_ALLOWED|REVOKED|SUSPENDED)(_.*)?$/, 403],
  [/^ERR_(.*_)?(SEALED|UNAVAILABLE|AUDIT_FULL|BUSY)(_.*)?$/, 503],
  [/^ERR_(.*_)?(INVALID|BAD|PARSE|SCHEMA|FORMAT|FRAME|LINT|CSR|CODE|EXPIRED|REPLAY|SIGNATURE|VALIDATION|AAD_MISMATCH|LAYOUT|RANGE|TOO_)(_.*)?$/, 400],
];

/** Explicit statuses for codes whose name does not say it (checked before the patterns). */
const EXPLICIT_STATUS: Record<string, number> = {
  ERR_CUSTODY_VERSION: 409,
  ERR_CUSTODY_INPUT: 400,
  ERR_CUSTODY_WRONG_PURPOSE: 409,
  ERR_CUSTODY_UNSUPPORTED: 422,
  ERR_CUSTODY_TAMPERED: 422,
  ERR_CUSTODY_AAD_MISMATCH: 422,
  ERR_CUSTODY_AUDIT: 503,
  ERR_CUSTODY_BACKEND: 503,
  ERR_CUSTODY_NOT_INITIALIZED: 503,
  ERR_CUSTODY_ALREADY_INITIALIZED: 409,
  ERR_INTEGRITY: 422,
  ERR_DOMAIN_LAYOUT_FINDINGS: 422,
  ERR_DOMAIN_FORBIDDEN: 403,
  ERR_PKI_CA_MISSING: 503,
  ERR_PKI_CA_KEY: 503,
  ERR_PKI_KEY_ALGORITHM: 400,
  ERR_PKI_ENROLMENT_CODE: 403,
  ERR_PKI_READER_STATE: 403,
  ERR_TOKEN_INVALID: 401,
  ERR_TOKEN_EXPIRED: 401,
  ERR_TOKEN_REPLAYED: 409,
  ERR_RECEIPT_MISMATCH: 409,
  ERR_LAYOUT_TOO_LARGE: 413,
  ERR_AUDIT_PROOF: 400,
  ERR_AUDIT_INPUT: 400,
  ERR_AUDIT_KEY_MATERIAL: 400,
  ERR_AUDIT_BACKPRESSURE: 503,
  ERR_AUDIT_CLOSED: 503,
  ERR_AUDIT_SIGNER: 503,
};

export function domainStatus(code: string): number | undefined {
  if (code in EXPLICIT_STATUS) return EXPLICIT_STATUS[code];
  for (const [re, status] of DOMAIN_STATUS) if (re.test(code)) return status;
  return undefined;
}

interface AjvError {
  instancePath?: string;
  message?: string;
  params?: Record<string, unknown>;
  keyword?: string;
}

function validationDetails(e: FastifyError): { path: string; message: string }[] {
  const ctx = (e as { validationContext?: string }).validationContext ?? 'body';
  return ((e.validation ?? []) as AjvError[]).map((v) => {
    let path = `/${ctx}${v.instancePath ?? ''}`;
    if (v.keyword === 'required' && typeof v.params?.missingProperty === 'string') path += `/${v.params.missingProperty}`;
    if (v.keyword === 'additionalProperties' && typeof v.params?.additionalProperty === 'string') {
      return { path: `${path}/${v.params.additionalProperty}`, message: 'unknown property' };
    }
    return { path, message: v.message ?? 'invalid' };
  });
}

/** Fastify's own 4xx codes → ours (stable; messages are fixed, never echo the input). */
const FASTIFY_CODES: Record<string, [number, string, string]> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'ERR_UNSUPPORTED_MEDIA_TYPE', 'unsupported content type'],
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'ERR_BODY_TOO_LARGE', 'request body too large'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'ERR_BAD_JSON', 'empty JSON body'],
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'ERR_BAD_JSON', 'request body is not valid JSON'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'ERR_BAD_REQUEST', 'invalid content length'],
  FST_ERR_CTP_EMPTY_TYPE: [415, 'ERR_UNSUPPORTED_MEDIA_TYPE', 'missing content type'],
  FST_ERR_CTP_INVALID_TYPE: [415, 'ERR_UNSUPPORTED_MEDIA_TYPE', 'invalid content type'],
  FST_ERR_BAD_URL: [400, 'ERR_BAD_REQUEST', 'malformed URL'],
  FST_ERR_MAX_PARAM_LENGTH: [414, 'ERR_URI_TOO_LONG', 'a path parameter is too long'],
  FST_ERR_ASYNC_CONSTRAINT: [400, 'ERR_BAD_REQUEST', 'bad request'],
};

export interface ErrorPayload {
  error: { code: string; message: string; details?: unknown };
}

export function toErrorResponse(err: unknown): { status: number; body: ErrorPayload; internal: boolean } {
  if (err instanceof ApiError) {
    const body: ErrorPayload = { error: { code: err.code, message: maskSecrets(err.message) } };
    if (err.details !== undefined) body.error.details = scrub(err.details);
    return { status: err.statusCode, body, internal: err.statusCode >= 500 };
  }
  const e = err as FastifyError & { code?: unknown; details?: unknown; issues?: unknown };
  if (e && Array.isArray(e.validation)) {
    const details = validationDetails(e);
    const first = details[0];
    return {
      status: 400,
      body: { error: { code: 'ERR_VALIDATION', message: first ? `${first.path}: ${first.message}` : 'invalid request', details } },
      internal: false,
    };
  }
  if (e && typeof e.code === 'string') {
    const f = FASTIFY_CODES[e.code];
    if (f) return { status: f[0], body: { error: { code: f[1], message: f[2] } }, internal: false };
    if (e.code.startsWith('FST_') && typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
      return { status: e.statusCode, body: { error: { code: 'ERR_BAD_REQUEST', message: 'bad request' } }, internal: false };
    }
    if (e.code.startsWith('ERR_') && !e.code.startsWith('ERR_INTERNAL')) {
      const status = domainStatus(e.code);
      if (status !== undefined) {
        const body: ErrorPayload = { error: { code: e.code, message: maskSecrets(String(e.message ?? '')) } };
        const details = e.details ?? e.issues;
        if (details !== undefined) body.error.details = scrub(details);
        return { status, body, internal: status >= 500 };
      }
    }
  }
  if (e && typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return { status: e.statusCode, body: { error: { code: 'ERR_BAD_REQUEST', message: 'bad request' } }, internal: false };
  }
  return { status: 500, body: { error: { code: 'ERR_INTERNAL', message: 'internal error (see the server log with the request id)' } }, internal: true };
}

export function sendError(reply: FastifyReply, req: FastifyRequest, err: unknown): FastifyReply {
  const { status, body, internal } = toErrorResponse(err);
  if (internal) req.log.error({ err }, 'request failed');
  else req.log.info({ code: body.error.code, status }, 'request refused');
  return reply.code(status).type('application/json; charset=utf-8').send(body);
}
