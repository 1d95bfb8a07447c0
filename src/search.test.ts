// @vitest-environment happy-dom
// The install box's search: debounced, stale answers dropped, "not in the index" with close
// names, and an unreachable index said so.
import { describe, expect, it } from 'vitest';

import { SearchModel, searchTerm } from './search';
import { fakeServer, json, trans } from './testing';

const INDEX = { label: 'test', reachable: true, message: null };

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise(resolve => setTimeout(resolve, 5));
  }
}

describe('searchTerm', () => {
  it('is the last word when it is a bare name', () => {
    expect(searchTerm('pan')).toBe('pan');
    expect(searchTerm('numpy pan')).toBe('pan');
    expect(searchTerm('pandas==2')).toBeNull();
    expect(searchTerm('pandas ')).toBeNull();
    expect(searchTerm('')).toBeNull();
  });
});

describe('SearchModel', () => {
  it('asks once after typing pauses, and drops an answer to an older query', async () => {
    const asked: string[] = [];
    const { settings } = fakeServer(async request => {
      const q = new URL(request.url).searchParams.get('q')!;
      asked.push(q);
      if (q === 'bfd') {
        await new Promise(resolve => setTimeout(resolve, 300)); // slow, and overtaken
      }
      return json(200, {
        query: q,
        mode: 'prefix',
        names: [{ name: `${q}-x`, display: `${q}-x` }],
        more: false,
        index: INDEX
      });
    });
    const search = new SearchModel(settings, trans);
    search.setText('b');
    search.setText('bf');
    search.setText('bfd');
    await until(() => asked.length === 1, 'the first question');
    expect(asked).toEqual(['bfd']);
    search.setText('bfde');
    await until(() => search.result?.query === 'bfde', 'the newer answer');
    await new Promise(resolve => setTimeout(resolve, 350));
    expect(search.result?.query).toBe('bfde');
    search.dispose();
  });

  it('a name the index lacks reads its project: not found, with close names', async () => {
    const { settings } = fakeServer(request => {
      const url = new URL(request.url);
      if (url.pathname.endsWith('/index/search')) {
        return json(200, {
          query: 'bfdemx',
          mode: 'prefix',
          names: [],
          more: false,
          index: INDEX
        });
      }
      return json(200, {
        name: 'bfdemx',
        found: false,
        locked: null,
        versions: [],
        close: ['bfdemo'],
        index: INDEX
      });
    });
    const search = new SearchModel(settings, trans);
    search.setText('bfdemx');
    await until(() => search.project !== null, 'the project answer');
    expect(search.project).toMatchObject({ found: false, close: ['bfdemo'] });
    search.dispose();
  });

  it('an unreachable index says so', async () => {
    const { settings } = fakeServer(() =>
      json(200, {
        query: 'x',
        mode: 'prefix',
        names: [],
        more: false,
        index: { label: 'PyPI', reachable: false, message: 'timed out' }
      })
    );
    const search = new SearchModel(settings, trans);
    search.setText('x');
    await until(() => search.result !== null, 'the answer');
    expect(search.reachable).toBe(false);
    expect(search.indexMessage).toBe('timed out');
    search.dispose();
  });
});
