// The SSE parser against chunks split anywhere, CRLF, several events per chunk, multi-line data.
import { describe, expect, it } from 'vitest';

import { ISSEEvent, SSEParser } from './sse';

function feedAll(chunks: string[]): ISSEEvent[] {
  const parser = new SSEParser();
  return chunks.flatMap(chunk => parser.feed(chunk));
}

const STREAM =
  'event: output\ndata: "Resolved 1 package"\n\n' +
  'event: output\ndata: "Installed 1 package"\n\n' +
  'event: result\ndata: {"status": 200, "body": {"changed": true}}\n\n';

const EXPECTED: ISSEEvent[] = [
  { event: 'output', data: '"Resolved 1 package"' },
  { event: 'output', data: '"Installed 1 package"' },
  { event: 'result', data: '{"status": 200, "body": {"changed": true}}' }
];

describe('SSEParser', () => {
  it('parses several events in one chunk', () => {
    expect(feedAll([STREAM])).toEqual(EXPECTED);
  });

  it('gives the same events whatever the chunks are split at', () => {
    for (let size = 1; size <= 7; size++) {
      const chunks: string[] = [];
      for (let i = 0; i < STREAM.length; i += size) {
        chunks.push(STREAM.slice(i, i + size));
      }
      expect(feedAll(chunks)).toEqual(EXPECTED);
    }
    for (let cut = 0; cut <= STREAM.length; cut++) {
      expect(feedAll([STREAM.slice(0, cut), STREAM.slice(cut)])).toEqual(
        EXPECTED
      );
    }
  });

  it('accepts CRLF and CR line ends, also with CR and LF in different chunks', () => {
    const crlf = STREAM.replace(/\n/g, '\r\n');
    expect(feedAll([crlf])).toEqual(EXPECTED);
    for (let cut = 0; cut <= crlf.length; cut++) {
      expect(feedAll([crlf.slice(0, cut), crlf.slice(cut)])).toEqual(EXPECTED);
    }
    expect(feedAll([STREAM.replace(/\n/g, '\r')])).toEqual(EXPECTED);
  });

  it('joins multi-line data with newlines', () => {
    expect(feedAll(['data: one\ndata:two\ndata:  three\n\n'])).toEqual([
      { event: 'message', data: 'one\ntwo\n three' }
    ]);
  });

  it('ignores comments, unknown fields and events without data', () => {
    expect(
      feedAll([
        ': keep-alive\n\nid: 7\nretry: 10\nevent: output\ndata: "x"\n\nevent: ping\n\n'
      ])
    ).toEqual([{ event: 'output', data: '"x"' }]);
  });

  it('keeps an unfinished event until its blank line arrives', () => {
    const parser = new SSEParser();
    expect(parser.feed('event: result\ndata: {}')).toEqual([]);
    expect(parser.feed('\n')).toEqual([]);
    expect(parser.feed('\n')).toEqual([{ event: 'result', data: '{}' }]);
  });
});
