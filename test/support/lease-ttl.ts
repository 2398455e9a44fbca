/**
 * How a test shortens the lease lifetime of the `arca` processes it starts, kept in this one place
 * so that tests do not depend on the mechanism: today the ARCA_LEASE_TTL_MS variable (heartbeat a
 * tenth of the lifetime, clock-skew allowance half of it); `args` is where command-line options
 * go if the lifetime becomes one.
 */
export interface LeaseTtlSetting {
  readonly env: Readonly<Record<string, string>>;
  readonly args: readonly string[];
}

export function leaseTtl(ms: number): LeaseTtlSetting {
  return { env: { ARCA_LEASE_TTL_MS: String(ms) }, args: [] };
}
