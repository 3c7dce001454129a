export { ConsentError, type ConsentErrorCode } from './errors.js';
export { ANY_PROFILE, OPERATIONS, SCOPES, active, decide, mismatch, type Authorisation, type AuthorisationQuery, type AuthorisationScope, type ConsentOperation } from './policy.js';
export {
  ConsentService,
  type AuthorisationRequest,
  type CardholderConsent,
  type ConsentActor,
  type ConsentAudit,
  type ConsentServiceOptions,
  type GrantInput,
  type PendingDeletion,
  type RequestInput,
  type RequestState,
} from './service.js';
