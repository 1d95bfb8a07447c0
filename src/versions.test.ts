// Every version change of an answer, in words.
import { describe, expect, it } from 'vitest';

import { describeVersionChanges, readVersions } from './versions';
import { trans } from './testing';

describe('version changes', () => {
  const versions = readVersions([
    { name: 'numpy', old: '2.4.6', new: '1.26.4' },
    { name: 'pandas', old: '3.1.1', new: '3.0.6' },
    { name: 'six', old: null, new: '1.17.0' },
    { name: 'attrs', old: '25.1.0', new: null },
    { name: 'same', old: '1.0', new: '1.0' },
    { name: 7 },
    'junk'
  ]);

  it('reads what moved and nothing else', () => {
    expect(versions.map(v => v.name)).toEqual([
      'numpy',
      'pandas',
      'six',
      'attrs'
    ]);
    expect(readVersions(undefined)).toEqual([]);
  });

  it('says every change but those the message already names', () => {
    // The server's also_changed leaves out what the message names (numpy here).
    const alsoChanged = versions.filter(v => v.name !== 'numpy');
    expect(describeVersionChanges(alsoChanged, trans)).toBe(
      'pandas 3.1.1 → 3.0.6, six 1.17.0 added, attrs removed'
    );
    expect(describeVersionChanges([], trans)).toBe('');
  });
});
