// Reading the versions a kernel has loaded: the expression the panel asks the kernel to
// evaluate, and the reader of its answer (IPython sends the report as application/json).

import { canonicalName } from './requirements';

/** What the kernel evaluates silently; `report()` returns a `KernelReport` (JSON). */
export const REPORT_EXPRESSION =
  "__import__('bifrost_kernel.report', fromlist=['report']).report()";

/** Canonical name → version in the kernel's memory. */
export type LoadedVersions = Record<string, string>;

/**
 * The loaded versions in a `user_expressions` entry (`{"status": "ok", "data":
 * {"application/json": {"loaded": {...}}}}`); null when the kernel could not answer (no
 * bifrost there).
 */
export function decodeKernelReport(expression: unknown): LoadedVersions | null {
  if (!expression || typeof expression !== 'object') {
    return null;
  }
  const entry = expression as {
    status?: string;
    data?: Record<string, unknown>;
  };
  const report = entry.data?.['application/json'] as
    { loaded?: unknown } | null | undefined;
  const loaded = report?.loaded;
  if (entry.status !== 'ok' || !loaded || typeof loaded !== 'object') {
    return null;
  }
  const versions: LoadedVersions = {};
  for (const [name, version] of Object.entries(loaded)) {
    if (typeof version === 'string') {
      versions[canonicalName(name)] = version;
    }
  }
  return versions;
}
