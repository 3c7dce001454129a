// The application-layout file format, as a TypeBox schema. This one definition drives both the
// TypeScript types (Static<...>) and the published JSON Schema (schemas/layout.schema.json, kept
// identical by a test). Semantic rules that JSON Schema cannot express (unique AIDs, key numbers,
// references to declared roles) live in validate.ts; isolation policy lives in lint.ts.
import { Type, type Static } from '@sinclair/typebox';

const Hex3 = Type.String({
  pattern: '^[0-9A-Fa-f]{6}$',
  description: 'Application identifier: 3 bytes, 6 hex digits (most significant byte first as written)',
});

export const KEY_ROLES = [
  'amk',
  'read',
  'write',
  'readwrite',
  'change',
  'debit',
  'credit',
  'limitedcredit',
  'tmac',
  'uid-read',
] as const;
export type KeyRole = (typeof KEY_ROLES)[number];

export const KeyRoleSchema = Type.Union(
  KEY_ROLES.map((r) => Type.Literal(r)),
  { description: 'The declared purpose of a key; the linter holds the key to exactly the rights of this purpose' },
);

export const DIVERSIFICATION_INPUTS = ['uid', 'aid', 'system', 'keyNo'] as const;

const DiversifiedDerivation = Type.Object(
  {
    method: Type.Literal('diversified'),
    master: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 128,
        description: 'Custody label of the master key; default "<tenant>/<aid>/<keyNo>"',
      }),
    ),
    input: Type.Optional(
      Type.Array(Type.Union(DIVERSIFICATION_INPUTS.map((i) => Type.Literal(i))), {
        minItems: 1,
        uniqueItems: true,
        description: 'Diversification input components in order; default [uid, aid, system]',
      }),
    ),
  },
  { additionalProperties: false },
);

const RandomDerivation = Type.Object(
  { method: Type.Literal('random') },
  { additionalProperties: false, description: 'A random key per card, stored only wrapped in custody' },
);

const StaticDerivation = Type.Object(
  {
    method: Type.Literal('static'),
    keyRef: Type.String({ minLength: 1, maxLength: 128, description: 'Custody label of one fixed key' }),
  },
  { additionalProperties: false, description: 'One key for every card (the linter refuses it)' },
);

export const DerivationSchema = Type.Union([
  Type.Literal('diversified'),
  Type.Literal('random'),
  DiversifiedDerivation,
  RandomDerivation,
  StaticDerivation,
]);

export const KeySchema = Type.Object(
  {
    no: Type.Integer({ minimum: 0, maximum: 13, description: 'Key number in the application (0 = AMK)' }),
    role: KeyRoleSchema,
    derivation: Type.Optional(DerivationSchema),
    description: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);

const Flags = {
  masterKeyChangeable: Type.Optional(Type.Boolean({ description: 'bit 0; default true' })),
  freeDirectoryListing: Type.Optional(Type.Boolean({ description: 'bit 1; default false' })),
  freeCreateDelete: Type.Optional(Type.Boolean({ description: 'bit 2; default false' })),
  configurationChangeable: Type.Optional(Type.Boolean({ description: 'bit 3; default true' })),
};

export const AppKeySettingsSchema = Type.Object(
  {
    ...Flags,
    changeKey: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'Who may change keys (high nibble): "amk" (0, default), "self" (E), "frozen" (F), or a role name',
      }),
    ),
    allowSelfChange: Type.Optional(
      Type.Boolean({ description: 'Declares that changeKey: self (nibble E) is intended' }),
    ),
  },
  { additionalProperties: false },
);

export const PiccKeySettingsSchema = Type.Object(Flags, { additionalProperties: false });

export const AccessValueSchema = Type.String({
  minLength: 1,
  description: 'A role name of this application, "free" (E) or "never" (F)',
});

export const AccessSchema = Type.Object(
  {
    read: Type.Optional(AccessValueSchema),
    write: Type.Optional(AccessValueSchema),
    readWrite: Type.Optional(AccessValueSchema),
    change: Type.Optional(AccessValueSchema),
  },
  { additionalProperties: false, description: 'Access rights by role; an absent right is "never"' },
);

export const CommModeSchema = Type.Union([Type.Literal('plain'), Type.Literal('mac'), Type.Literal('full')]);

const FileCommon = {
  no: Type.Integer({ minimum: 0, maximum: 31, description: 'File number' }),
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  comm: Type.Optional(CommModeSchema),
  access: AccessSchema,
  public: Type.Optional(Type.Boolean({ description: 'The file is meant to be free to read' })),
  description: Type.Optional(Type.String({ maxLength: 200 })),
};

const U24 = (description: string) => Type.Integer({ minimum: 1, maximum: 0xffffff, description });
const I32 = (description: string) => Type.Integer({ minimum: -2147483648, maximum: 2147483647, description });

export const DataFileSchema = Type.Object(
  { ...FileCommon, type: Type.Union([Type.Literal('std'), Type.Literal('backup')]), size: U24('Size in bytes') },
  { additionalProperties: false },
);

export const ValueFileSchema = Type.Object(
  {
    ...FileCommon,
    type: Type.Literal('value'),
    lower: I32('Lower limit'),
    upper: I32('Upper limit'),
    value: Type.Optional(I32('Initial value; default lower limit')),
    limitedCredit: Type.Optional(Type.Boolean({ description: 'LimitedCredit enabled; default false' })),
  },
  { additionalProperties: false },
);

export const RecordFileSchema = Type.Object(
  {
    ...FileCommon,
    type: Type.Union([Type.Literal('linear'), Type.Literal('cyclic')]),
    recordSize: U24('Record size in bytes'),
    maxRecords: U24('Maximum number of records (cyclic: including the spare record)'),
  },
  { additionalProperties: false },
);

export const TmacFileSchema = Type.Object(
  {
    ...FileCommon,
    type: Type.Literal('tmac'),
  },
  {
    additionalProperties: false,
    description:
      'Transaction MAC file (EV2+, one per application): the card counts and MACs every committed transaction. ' +
      'Its AES key is derived from the application key with role tmac. Access: read = who reads TMC/TMV, ' +
      'readWrite = who may CommitReaderID ("never" disables it), write is always never, change = settings',
  },
);

export const FileSchema = Type.Union([DataFileSchema, ValueFileSchema, RecordFileSchema, TmacFileSchema]);

export const ApplicationSchema = Type.Object(
  {
    aid: Hex3,
    name: Type.String({ minLength: 1, maxLength: 64 }),
    keyType: Type.Optional(Type.Union([Type.Literal('aes'), Type.Literal('3k3des')], { description: 'default aes' })),
    keyCount: Type.Optional(Type.Integer({ minimum: 1, maximum: 14, description: 'default: number of keys listed' })),
    systemIdentifier: Type.Optional(
      Type.String({ pattern: '^([0-9A-Fa-f]{2}){0,21}$', description: 'Hex diversification system identifier' }),
    ),
    keySettings: Type.Optional(AppKeySettingsSchema),
    keys: Type.Array(KeySchema, { minItems: 1, maxItems: 14 }),
    files: Type.Array(FileSchema, { maxItems: 32 }),
  },
  { additionalProperties: false },
);

export const TenantSchema = Type.Object(
  {
    id: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$', description: 'Stable tenant identifier' }),
    name: Type.String({ minLength: 1, maxLength: 128 }),
    applications: Type.Array(ApplicationSchema, { minItems: 1 }),
  },
  { additionalProperties: false },
);

export const PiccSchema = Type.Object(
  {
    keySettings: Type.Optional(PiccKeySettingsSchema),
    randomUid: Type.Optional(Type.Boolean({ description: 'Enable random UID (SetConfiguration); default false' })),
  },
  { additionalProperties: false },
);

export const LayoutSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String()),
    version: Type.Literal(1),
    name: Type.String({ minLength: 1, maxLength: 128 }),
    picc: Type.Optional(PiccSchema),
    tenants: Type.Array(TenantSchema, { minItems: 1 }),
  },
  {
    additionalProperties: false,
    $id: 'https://desfire-cms.example/schemas/layout.schema.json',
    title: 'desfire-cms application layout',
    description: 'Tenants, their DESFire applications, keys (by role) and files (access rights by role)',
  },
);

export type LayoutDoc = Static<typeof LayoutSchema>;
export type TenantDoc = Static<typeof TenantSchema>;
export type ApplicationDoc = Static<typeof ApplicationSchema>;
export type KeyDoc = Static<typeof KeySchema>;
export type FileDoc = Static<typeof FileSchema>;
export type AccessDoc = Static<typeof AccessSchema>;
export type DerivationDoc = Static<typeof DerivationSchema>;
export type CommMode = Static<typeof CommModeSchema>;

/** The JSON Schema as published (TypeBox schemas are JSON Schema; symbols are dropped by JSON). */
export function publishedSchema(): unknown {
  return { $schema: 'https://json-schema.org/draft/2020-12/schema', ...JSON.parse(JSON.stringify(LayoutSchema)) };
}
