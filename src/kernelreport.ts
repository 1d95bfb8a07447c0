// Reading the versions a kernel has loaded: the expression the panel asks the kernel to
// evaluate, and the decoder of its answer (the Python repr of a JSON string).

import { canonicalName } from './requirements';

/** What the kernel evaluates silently; `report()` returns a JSON str. */
export const REPORT_EXPRESSION =
  "__import__('bifrost_kernel.report', fromlist=['report']).report()";

/** Canonical name → version in the kernel's memory. */
export type LoadedVersions = Record<string, string>;

const SIMPLE_ESCAPES: Record<string, string> = {
  '\\': '\\',
  "'": "'",
  '"': '"',
  n: '\n',
  r: '\r',
  t: '\t',
  a: '\x07',
  b: '\b',
  f: '\f',
  v: '\v',
  '0': '\0'
};

/**
 * The text of a Python str repr (`'...'` or `"..."`, with repr's escapes: `\\`, `\'`,
 * `\n`, `\xNN`, `\uNNNN`, `\UNNNNNNNN`). Throws on anything that is not one.
 */
export function decodePythonStr(repr: string): string {
  const text = repr.trim();
  const quote = text[0];
  if (
    text.length < 2 ||
    (quote !== "'" && quote !== '"') ||
    text[text.length - 1] !== quote
  ) {
    throw new Error(`not a Python string: ${text.slice(0, 40)}`);
  }
  const body = text.slice(1, -1);
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const char = body[i];
    if (char !== '\\') {
      out += char;
      continue;
    }
    const next = body[++i];
    if (next === undefined) {
      throw new Error('a Python string ending in a lone backslash');
    }
    const width = next === 'x' ? 2 : next === 'u' ? 4 : next === 'U' ? 8 : 0;
    if (width) {
      const hex = body.slice(i + 1, i + 1 + width);
      if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== width) {
        throw new Error(`a bad \\${next} escape in a Python string`);
      }
      out += String.fromCodePoint(parseInt(hex, 16));
      i += width;
    } else if (next in SIMPLE_ESCAPES) {
      out += SIMPLE_ESCAPES[next];
    } else {
      out += '\\' + next;
    }
  }
  return out;
}

/**
 * The loaded versions in a `user_expressions` entry (`{"status": "ok", "data":
 * {"text/plain": "'<json>'"}}`); null when the kernel could not answer (no bifrost there).
 */
export function decodeKernelReport(expression: unknown): LoadedVersions | null {
  if (!expression || typeof expression !== 'object') {
    return null;
  }
  const entry = expression as {
    status?: string;
    data?: Record<string, unknown>;
  };
  const plain = entry.data?.['text/plain'];
  if (entry.status !== 'ok' || typeof plain !== 'string') {
    return null;
  }
  try {
    const report = JSON.parse(decodePythonStr(plain));
    const loaded = report?.loaded;
    if (!loaded || typeof loaded !== 'object') {
      return null;
    }
    const versions: LoadedVersions = {};
    for (const [name, version] of Object.entries(loaded)) {
      if (typeof version === 'string') {
        versions[canonicalName(name)] = version;
      }
    }
    return versions;
  } catch {
    return null;
  }
}
