/** A user of a tenant, as the domain sees it. */
export interface User {
  readonly id: string;
  readonly email: string;
  readonly displayName: string;
  readonly roles: readonly string[];
  readonly state: UserState;
  readonly version: number;
  readonly createTime: Date;
  readonly updateTime: Date;
}

export type UserState = "active" | "disabled";

/** What a client decides when creating a user. */
export interface NewUser {
  readonly email: string;
  readonly displayName: string;
  readonly roles: readonly string[];
  readonly state: UserState;
}

/** The fields an update may change; absent fields stay as they are. */
export type UserPatch = Partial<NewUser>;

/** The field-mask paths an update accepts, mapped to the domain field they change. */
export const updatableUserFields = {
  email: "email",
  display_name: "displayName",
  roles: "roles",
  state: "state",
} as const satisfies Record<string, keyof NewUser>;
