// The Tauri commands this window calls. Shapes mirror src-tauri/src/vault.rs.
import { invoke } from "@tauri-apps/api/core";

export type Role = "admin" | "physician" | "nurse" | "front_desk" | "auditor";

export interface SignedIn {
  user: string;
  role: Role;
  recovery: boolean;
}

export interface VaultStatus {
  exists: boolean;
  location: string;
  signed_in: SignedIn | null;
  /** Why the vault locked without being asked to (shown once), e.g. the idle timeout. */
  notice: string | null;
}

export interface Created {
  recovery_key: string;
  signed_in: SignedIn;
}

/** Every command fails with this shape; `message` is written for the person at the screen. */
export interface AppError {
  code: string;
  message: string;
}

export function asAppError(e: unknown): AppError {
  if (e && typeof e === "object" && "message" in e && "code" in e) {
    return e as AppError;
  }
  return { code: "internal", message: "Something went wrong. Please try again." };
}

export const api = {
  vaultStatus: () => invoke<VaultStatus>("vault_status"),
  createVault: (admin: string, password: string) => invoke<Created>("create_vault", { admin, password }),
  unlock: (user: string, password: string) => invoke<SignedIn>("unlock", { user, password }),
  lock: () => invoke<void>("lock"),
  keepAlive: () => invoke<void>("keep_alive"),
};

export const ROLE_LABELS: Record<Role, string> = {
  admin: "Administrator",
  physician: "Physician",
  nurse: "Nurse",
  front_desk: "Front desk",
  auditor: "Auditor",
};
