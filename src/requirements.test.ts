// Names, the install box's splitting, and the history's diff.
import { describe, expect, it } from 'vitest';

import {
  canonicalName,
  diffRequirements,
  projectName,
  splitSpecs,
  withoutVersion
} from './requirements';

describe('upgrade', () => {
  it('keeps the name, extras and marker, drops the version', () => {
    expect(withoutVersion('pandas==2.2.3')).toBe('pandas');
    expect(withoutVersion('Requests[socks, security] >=2.31,<3')).toBe(
      'Requests[socks,security]'
    );
    expect(withoutVersion('pywin32==306; sys_platform == "win32"')).toBe(
      'pywin32; sys_platform == "win32"'
    );
    expect(withoutVersion('six')).toBe('six');
  });
});

describe('names', () => {
  it('canonicalizes as PEP 503 says', () => {
    expect(canonicalName('Foo.Bar__baz-_.Qux')).toBe('foo-bar-baz-qux');
  });

  it("reads a spec line's project", () => {
    expect(projectName('Requests[socks]>=2.31')).toBe('requests');
    expect(projectName('zope.interface==6.0')).toBe('zope-interface');
    expect(projectName("pywin32==306; sys_platform == 'win32'")).toBe(
      'pywin32'
    );
    expect(projectName('   ')).toBe('');
  });
});

describe('splitSpecs', () => {
  it('splits on whitespace and keeps quoted specs whole', () => {
    expect(splitSpecs('  pandas==2.2   "requests[socks]>=2"\tattrs ')).toEqual([
      'pandas==2.2',
      'requests[socks]>=2',
      'attrs'
    ]);
    expect(splitSpecs("'numpy >= 2' x")).toEqual(['numpy >= 2', 'x']);
    expect(splitSpecs('""  ')).toEqual([]);
    expect(splitSpecs('')).toEqual([]);
  });
});

describe('diffRequirements', () => {
  it('lists added and removed lines', () => {
    expect(diffRequirements('a==1\nb==1\n', 'a==1\nb==2\nc\n')).toEqual({
      added: ['b==2', 'c'],
      removed: ['b==1']
    });
  });

  it('treats the first revision as all added and ignores comments', () => {
    expect(diffRequirements(null, '# saved\na==1\n\n')).toEqual({
      added: ['a==1'],
      removed: []
    });
    expect(diffRequirements('a\n', 'a\r\n')).toEqual({
      added: [],
      removed: []
    });
  });
});
