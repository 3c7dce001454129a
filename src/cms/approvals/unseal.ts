// Vault unseal and seal over the API (embedded vault). A passphrase-sealed vault opens with the
// passphrase AND a consumed vault_unseal approval naming the vault (M-of-N issuer admins other
// than the requester); a share-sealed vault opens when its threshold of shares is in, each
// submitted by a different operator — the shares themselves are the M-of-N. Sealing wipes every
// key from memory at once. Every step is audited (the vault's own ceremony events, and
// 'vault.unseal' / 'vault.seal' entries naming the operator). While the vault is sealed, key
// operations answer 503 ERR_VAULT_SEALED (vaultGate).
import type { CallerContext, KeyCustody } from '../../custody/types.js';
import { RotationError } from '../rotation/errors.js';
import type { AuditRecorder } from '../rotation/audit.js';
import type { ApprovalService } from './service.js';

/** What the API needs of the embedded vault (EmbeddedVault implements it). */
export interface VaultControl {
  status(): { initialized: boolean; sealed: boolean; vaultId?: string; sealType?: 'passphrase' | 'shamir'; shares?: number; threshold?: number; progress?: number };
  unsealWithPassphrase(passphrase: Uint8Array | string, ctx?: CallerContext): Promise<void>;
  submitShare(text: string, ctx?: CallerContext): Promise<unknown>;
  seal(ctx?: CallerContext): Promise<void>;
}

export class VaultError extends Error {
  constructor(
    readonly code: 'ERR_VAULT_SEALED' | 'ERR_VAULT_UNSEALED' | 'ERR_VAULT_BAD_INPUT' | 'ERR_VAULT_SHARE_DUPLICATE' | 'ERR_VAULT_NOT_INITIALIZED',
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'VaultError';
  }
}

export interface VaultStatusView {
  backend: string;
  initialized: boolean;
  sealed: boolean;
  vaultId?: string;
  sealType?: 'passphrase' | 'shamir';
  threshold?: number;
  /** Shares submitted so far in the current ceremony, and by whom. */
  progress?: number;
  submittedBy?: string[];
}

export class VaultUnsealService {
  /** Operators who submitted a share in the current ceremony (one share each). */
  private submitters: string[] = [];

  constructor(
    private readonly o: { vault: VaultControl; approvals: ApprovalService; audit: AuditRecorder; backend?: string },
  ) {}

  status(): VaultStatusView {
    const s = this.o.vault.status();
    const v: VaultStatusView = { backend: this.o.backend ?? 'embedded', initialized: s.initialized, sealed: s.sealed };
    if (s.vaultId) v.vaultId = s.vaultId;
    if (s.sealType) v.sealType = s.sealType;
    if (s.sealType === 'shamir') Object.assign(v, { threshold: s.threshold, progress: s.progress ?? 0, submittedBy: [...this.submitters] });
    return v;
  }

  private vaultId(): string {
    const s = this.o.vault.status();
    if (!s.initialized || !s.vaultId) throw new VaultError('ERR_VAULT_NOT_INITIALIZED', 503, 'the vault is not initialised (desfire-cms vault init)');
    if (!s.sealed) throw new VaultError('ERR_VAULT_UNSEALED', 409, 'the vault is already unsealed');
    return s.vaultId;
  }

  /** Passphrase vault: the passphrase plus an approved vault_unseal request naming this vault. */
  async unsealWithPassphrase(ctx: CallerContext, passphrase: string, approvalId: string | undefined): Promise<VaultStatusView> {
    const vaultId = this.vaultId();
    if (this.o.vault.status().sealType !== 'passphrase') throw new VaultError('ERR_VAULT_BAD_INPUT', 400, 'this vault is sealed by shares: submit shares, one per operator');
    if (typeof passphrase !== 'string' || passphrase.length === 0) throw new VaultError('ERR_VAULT_BAD_INPUT', 400, 'give the passphrase');
    // The approval must be usable before the passphrase is tried, and is consumed only by a
    // successful unseal (a mistyped passphrase does not burn it); if it was used concurrently the
    // vault is sealed again at once.
    await this.checkApproval(approvalId, vaultId);
    try {
      await this.o.vault.unsealWithPassphrase(passphrase, ctx);
    } catch (e) {
      await this.o.audit.record({ actor: ctx.actor, operation: 'vault.unseal', result: 'error', correlationId: approvalId ?? null, details: { code: String((e as { code?: string }).code ?? 'ERR_CUSTODY_UNSEAL_FAILED'), method: 'passphrase' } });
      throw e;
    }
    try {
      await this.o.approvals.consume(approvalId!, 'vault_unseal', ctx.actor, (p) => p.vaultId === vaultId);
    } catch (e) {
      await this.o.vault.seal(ctx);
      throw e;
    }
    await this.o.audit.record({ actor: ctx.actor, operation: 'vault.unseal', result: 'ok', correlationId: approvalId!, details: { method: 'passphrase' } });
    return this.status();
  }

  private async checkApproval(approvalId: string | undefined, vaultId: string): Promise<void> {
    if (typeof approvalId !== 'string' || approvalId.length === 0) throw new RotationError('ERR_APPROVAL_REQUIRED', `unsealing with the passphrase needs an approved vault_unseal request naming vaultId=${vaultId} (give approvalId)`);
    const r = await this.o.approvals.get(approvalId);
    if (!r) throw new RotationError('ERR_APPROVAL_REQUIRED', 'this operation needs an approved request (approval id missing or unknown)');
    if (r.kind !== 'vault_unseal' || r.payload.vaultId !== vaultId) throw new RotationError('ERR_APPROVAL_MISMATCH', `approval ${r.id} was granted for another operation`);
    if (r.state === 'expired') throw new RotationError('ERR_APPROVAL_EXPIRED', `approval ${r.id} has expired`);
    if (r.state !== 'approved') throw new RotationError(r.state === 'pending' ? 'ERR_APPROVAL_REQUIRED' : 'ERR_APPROVAL_STATE', `approval ${r.id} is ${r.state}`);
  }

  /** Share vault: one share per operator; the threshold-th distinct submitter's share unseals. */
  async submitShare(ctx: CallerContext, share: string): Promise<VaultStatusView> {
    this.vaultId();
    if (this.o.vault.status().sealType !== 'shamir') throw new VaultError('ERR_VAULT_BAD_INPUT', 400, 'this vault is sealed by a passphrase: give the passphrase and an approval');
    if (typeof share !== 'string' || share.length === 0 || share.length > 4096) throw new VaultError('ERR_VAULT_BAD_INPUT', 400, 'give one share');
    if ((this.o.vault.status().progress ?? 0) === 0) this.submitters = [];
    if (this.submitters.includes(ctx.actor)) {
      await this.o.audit.record({ actor: ctx.actor, operation: 'vault.unseal', result: 'denied', details: { code: 'ERR_VAULT_SHARE_DUPLICATE', method: 'shares' } });
      throw new VaultError('ERR_VAULT_SHARE_DUPLICATE', 409, 'you have already submitted a share in this ceremony: each share comes from a different operator');
    }
    try {
      await this.o.vault.submitShare(share, ctx);
    } catch (e) {
      if ((this.o.vault.status().progress ?? 0) === 0) this.submitters = [];
      await this.o.audit.record({ actor: ctx.actor, operation: 'vault.unseal', result: 'error', details: { code: String((e as { code?: string }).code ?? 'ERR_CUSTODY_BAD_SHARE'), method: 'shares' } });
      throw e;
    }
    this.submitters.push(ctx.actor);
    const s = this.status();
    await this.o.audit.record({ actor: ctx.actor, operation: 'vault.unseal', result: s.sealed ? 'share' : 'ok', details: { method: 'shares', progress: s.sealed ? (s.progress ?? 0) : this.submitters.length, threshold: s.threshold ?? 0, submittedBy: [...this.submitters] } });
    if (!s.sealed) this.submitters = [];
    return s;
  }

  async seal(ctx: CallerContext, reason: string): Promise<VaultStatusView> {
    const s = this.o.vault.status();
    if (!s.initialized) throw new VaultError('ERR_VAULT_NOT_INITIALIZED', 503, 'the vault is not initialised');
    await this.o.vault.seal(ctx);
    this.submitters = [];
    await this.o.audit.record({ actor: ctx.actor, operation: 'vault.seal', result: 'ok', details: { wasSealed: s.sealed, reason: String(reason).slice(0, 200) } });
    return this.status();
  }
}

/**
 * The custody the API uses, answering ERR_VAULT_SEALED (503) instead of ERR_CUSTODY_SEALED while
 * the vault is sealed, so clients see one stable code for "unseal the vault first".
 */
export function vaultGate(inner: KeyCustody): KeyCustody {
  const wrapped = new Map<PropertyKey, unknown>(); // one wrapper per method: nothing allocated per call but the error path
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function' || prop === 'close') return v;
      let w = wrapped.get(prop);
      if (!w) {
        w = (...args: unknown[]) => {
          const r = (v as (...a: unknown[]) => unknown).apply(target, args);
          return r instanceof Promise ? r.catch(rethrowSealed) : r;
        };
        wrapped.set(prop, w);
      }
      return w;
    },
  });
}

const rethrowSealed = (e: unknown): never => {
  throw asVaultSealed(e);
};

function asVaultSealed(e: unknown): unknown {
  return (e as { code?: string })?.code === 'ERR_CUSTODY_SEALED' ? new VaultError('ERR_VAULT_SEALED', 503, 'the vault is sealed: unseal it (POST /v1/custody/unseal)') : e;
}
