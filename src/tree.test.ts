// "Why is this here": requirement lines, their dependencies when expanded, cycles marked.
import { describe, expect, it } from 'vitest';

import type { ITree } from './api';
import type { IRequirementRow } from './model';
import { treeLines } from './tree';

const row = (name: string): IRequirementRow => ({
  name,
  spec: `${name}==1.0`,
  locked: '1.0',
  loaded: null,
  stale: false
});

const TREE: ITree = {
  workspace: 'default',
  hash: 'h',
  python: '3.11.2',
  roots: ['app', 'lone'],
  nodes: {
    app: {
      version: '1.0',
      requires: [{ name: 'dep', specifier: '>=1', extra: null }]
    },
    dep: {
      version: '2.0',
      requires: [{ name: 'app', specifier: '', extra: null }]
    },
    lone: { version: '1.0', requires: [] }
  },
  required_by: { app: ['dep'], dep: ['app', 'other'] }
};

describe('treeLines', () => {
  it('is one line per requirement while nothing is expanded', () => {
    const lines = treeLines([row('app'), row('lone')], TREE, new Set());
    expect(lines.map(l => [l.kind, l.path])).toEqual([
      ['requirement', 'app'],
      ['requirement', 'lone']
    ]);
    expect(lines.map(l => l.kind === 'requirement' && l.expandable)).toEqual([
      true,
      false
    ]);
  });

  it('says the tree is being read before it is, and what an expanded line requires', () => {
    expect(
      treeLines([row('app')], null, new Set(['app'])).map(l => l.kind)
    ).toEqual(['requirement', 'note']);
    const lines = treeLines([row('app')], TREE, new Set(['app']));
    expect(lines[1]).toMatchObject({
      kind: 'dependency',
      name: 'dep',
      version: '2.0',
      specifier: '>=1',
      depth: 1,
      cycle: false,
      alsoRequiredBy: ['other']
    });
  });

  it('marks a cycle and never expands it', () => {
    const lines = treeLines(
      [row('app')],
      TREE,
      new Set(['app', 'app/dep', 'app/dep/app'])
    );
    expect(lines.map(l => l.path)).toEqual(['app', 'app/dep', 'app/dep/app']);
    expect(lines[2]).toMatchObject({ cycle: true, expandable: false });
  });
});
