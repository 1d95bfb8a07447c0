// A notebook output that says a module could not be imported at all, as bifrost's kernel side
// sends it (display_data `application/vnd.bifrost.missing-import+json`, after the error): its
// data, read strictly. The kernel knows the distribution's name (sklearn → scikit-learn);
// missingrenderer.ts renders it, the model offers it in the panel.

export const MISSING_IMPORT_MIME =
  'application/vnd.bifrost.missing-import+json';

/** What the kernel could not import, and what installs it. */
export interface IMissingImport {
  module: string;
  distribution: string;
  command: string;
}

/** The output's data when it has the expected shape, else null. */
export function readMissingImport(data: unknown): IMissingImport | null {
  if (typeof data !== 'object' || data === null) {
    return null;
  }
  const { module, distribution, command } = data as Record<string, unknown>;
  const name = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
  if (
    typeof module !== 'string' ||
    typeof distribution !== 'string' ||
    typeof command !== 'string' ||
    !name.test(distribution)
  ) {
    return null;
  }
  return { module, distribution, command };
}
