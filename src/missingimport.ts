// A notebook output that says a module could not be imported at all, as bifrost's kernel side
// sends it (display_data `application/vnd.bifrost.missing-import+json`, after the error): its
// module, read strictly. Only the module is believed: what installs it comes from the
// server's own table (`GET api/packages/distribution`), never from the output, which anyone
// who wrote the notebook file chose. missingrenderer.ts renders it, the model offers it.

export const MISSING_IMPORT_MIME =
  'application/vnd.bifrost.missing-import+json';

/** A plain top-level module name, as an `import` statement names one. */
const MODULE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,99}$/;

/** What an output says could not be imported. */
export interface IMissingImport {
  module: string;
}

/** What the server says installs a missing module, and where it would be saved. */
export interface IMissingOffer {
  module: string;
  distribution: string;
  workspace: string;
}

/** The output's module when the data has the expected shape, else null. */
export function readMissingImport(data: unknown): IMissingImport | null {
  if (typeof data !== 'object' || data === null) {
    return null;
  }
  const { module } = data as Record<string, unknown>;
  if (typeof module !== 'string' || !MODULE_NAME.test(module)) {
    return null;
  }
  return { module };
}

/** The server's answer when it has the expected shape, else null. */
export function readMissingOffer(data: unknown): IMissingOffer | null {
  if (typeof data !== 'object' || data === null) {
    return null;
  }
  const { module, distribution, workspace } = data as Record<string, unknown>;
  if (
    typeof module !== 'string' ||
    typeof distribution !== 'string' ||
    typeof workspace !== 'string'
  ) {
    return null;
  }
  return { module, distribution, workspace };
}
