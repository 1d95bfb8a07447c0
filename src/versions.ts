// The `versions` of a change's answer in the user's words: every distribution whose version
// moved, dependencies included ("pandas 3.1.1 → 3.0.6, six added, attrs removed"), so a
// downgrade nobody asked for is never silent.

import type { TranslationBundle } from '@jupyterlab/translation';

/** One distribution whose locked version changed (null: added or removed). */
export interface IVersionChange {
  name: string;
  old: string | null;
  new: string | null;
}

/** The answer's `versions`, read strictly (anything malformed is left out). */
export function readVersions(value: unknown): IVersionChange[] {
  if (!Array.isArray(value)) {
    return [];
  }
  const text = (v: unknown) => (typeof v === 'string' ? v : null);
  return value
    .filter(
      (v): v is Record<string, unknown> =>
        typeof v === 'object' && v !== null && typeof v.name === 'string'
    )
    .map(v => ({ name: v.name as string, old: text(v.old), new: text(v.new) }))
    .filter(v => v.old !== v.new);
}

/** The changes the server lists as `also_changed` (those the change did not name). */
export function describeVersionChanges(
  changes: IVersionChange[],
  trans: TranslationBundle
): string {
  return changes
    .map(change => {
      if (change.old === null) {
        return trans.__('%1 %2 added', change.name, change.new ?? '');
      }
      if (change.new === null) {
        return trans.__('%1 removed', change.name);
      }
      return `${change.name} ${change.old} → ${change.new}`;
    })
    .join(', ');
}
