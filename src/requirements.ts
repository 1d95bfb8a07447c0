// Requirement lines as the panel reads and writes them: PEP 503 names, the install box's
// whitespace-separated (optionally quoted) specs, and the diff between two revisions.

/** PEP 503 canonical name: lowercase, runs of `-`, `_` and `.` become one `-`. */
export function canonicalName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

/** The canonical project name a PEP 508 spec line starts with ('' when it has none). */
export function projectName(spec: string): string {
  const match = /^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)/.exec(spec);
  return match ? canonicalName(match[1]) : '';
}

/**
 * The spec without its version constraint: its name, extras and environment marker, which
 * an install resolves to the newest version (the server drops the lock's pin of every
 * project a change names). `requests[socks]>=2 ; python_version>"3"` → `requests[socks];
 * python_version>"3"`.
 */
export function withoutVersion(spec: string): string {
  const match = /^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?/.exec(spec);
  if (!match) {
    return spec.trim();
  }
  const marker = spec.indexOf(';');
  const extras = (match[2] ?? '').replace(/\s+/g, '');
  return (
    match[1] +
    extras +
    (marker >= 0 ? '; ' + spec.slice(marker + 1).trim() : '')
  );
}

/**
 * Split the install box's text into specs: whitespace separates them, and single or double
 * quotes keep a spec with spaces or shell-like quoting whole (`"requests[socks]>=2"`).
 * An unclosed quote runs to the end of the text.
 */
export function splitSpecs(text: string): string[] {
  const specs: string[] = [];
  let current = '';
  let started = false;
  let quote: string | null = null;
  for (const char of text) {
    if (quote) {
      if (char === quote) {
        quote = null;
      } else {
        current += char;
      }
    } else if (char === '"' || char === "'") {
      quote = char;
      started = true;
    } else if (/\s/.test(char)) {
      if (started) {
        specs.push(current);
      }
      current = '';
      started = false;
    } else {
      current += char;
      started = true;
    }
  }
  if (started) {
    specs.push(current);
  }
  return specs.filter(spec => spec.trim() !== '');
}

/** Lines added and removed between two requirements texts (comments and blanks ignored). */
export interface IDiff {
  added: string[];
  removed: string[];
}

/** What changed from `previous` (null: the first revision) to `content`. */
export function diffRequirements(
  previous: string | null,
  content: string
): IDiff {
  const before = meaningfulLines(previous ?? '');
  const after = meaningfulLines(content);
  return {
    added: after.filter(line => !before.includes(line)),
    removed: before.filter(line => !after.includes(line))
  };
}

function meaningfulLines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map(line => line.trim())
    .filter(line => line !== '' && !line.startsWith('#'));
}
