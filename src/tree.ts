// "Why is this here": the installed section's lines, from the saved requirements and the
// environment's dependency graph (`GET api/packages/tree`). Pure, so every case is
// unit-tested: a requirement is a line, an expanded one has its dependencies under it, a
// dependency already on the path from its root is a cycle (marked, never expanded again).

import type { ITree } from './api';
import type { IRequirementRow } from './model';

/** A saved requirement: the only kind of line that can be changed. */
export interface IRequirementLine {
  kind: 'requirement';
  /** The root's canonical name: expansions are keyed by path from the root. */
  path: string;
  depth: 0;
  row: IRequirementRow;
  /** Unknown before the tree is read (then true), else whether it requires anything. */
  expandable: boolean;
}

/** A package something above it requires. */
export interface IDependencyLine {
  kind: 'dependency';
  path: string;
  depth: number;
  name: string;
  /** The version installed; null when the environment does not have it. */
  version: string | null;
  /** What the parent asks for (`>=1`), empty for any version. */
  specifier: string;
  /** The parent's extra this requirement comes with, if any. */
  extra: string | null;
  expandable: boolean;
  /** Already on the path from the root: expanding it would loop. */
  cycle: boolean;
  /** The other packages that require it (`required_by`, without the parent). */
  alsoRequiredBy: string[];
}

/** A placeholder under an expanded line: the tree is being read, or nothing is required. */
export interface INoteLine {
  kind: 'note';
  note: 'loading' | 'none';
  path: string;
  depth: number;
}

export type ITreeLine = IRequirementLine | IDependencyLine | INoteLine;

/** The lines to show, in order, for these rows, graph and expanded paths. */
export function treeLines(
  rows: IRequirementRow[],
  tree: ITree | null,
  expanded: ReadonlySet<string>
): ITreeLine[] {
  const lines: ITreeLine[] = [];
  for (const row of rows) {
    const node = tree?.nodes[row.name];
    const path = row.name;
    lines.push({
      kind: 'requirement',
      path,
      depth: 0,
      row,
      expandable: tree === null || (node?.requires.length ?? 0) > 0
    });
    if (expanded.has(path)) {
      children(tree, row.name, path, 1, [row.name], expanded, lines);
    }
  }
  return lines;
}

function children(
  tree: ITree | null,
  name: string,
  path: string,
  depth: number,
  ancestors: string[],
  expanded: ReadonlySet<string>,
  lines: ITreeLine[]
): void {
  if (tree === null) {
    lines.push({ kind: 'note', note: 'loading', path: `${path}/…`, depth });
    return;
  }
  const requires = tree.nodes[name]?.requires ?? [];
  if (requires.length === 0) {
    lines.push({ kind: 'note', note: 'none', path: `${path}/∅`, depth });
    return;
  }
  const seen = new Set<string>();
  for (const edge of requires) {
    if (seen.has(edge.name)) {
      continue; // one line per dependency, whichever extras ask for it
    }
    seen.add(edge.name);
    const childPath = `${path}/${edge.name}`;
    const node = tree.nodes[edge.name];
    const cycle = ancestors.includes(edge.name);
    const expandable = !cycle && (node?.requires.length ?? 0) > 0;
    lines.push({
      kind: 'dependency',
      path: childPath,
      depth,
      name: edge.name,
      version: node?.version ?? null,
      specifier: edge.specifier,
      extra: edge.extra,
      expandable,
      cycle,
      alsoRequiredBy: (tree.required_by[edge.name] ?? []).filter(
        by => by !== name
      )
    });
    if (expandable && expanded.has(childPath)) {
      children(
        tree,
        edge.name,
        childPath,
        depth + 1,
        [...ancestors, edge.name],
        expanded,
        lines
      );
    }
  }
}
