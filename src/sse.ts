// Incremental parser of server-sent events (text/event-stream), kept free of I/O so the
// streaming client in api.ts can feed it whatever chunks the network delivers.

/** One dispatched event: its type (`message` when the stream gave none) and its data. */
export interface ISSEEvent {
  event: string;
  data: string;
}

/**
 * Parses a stream fed in chunks split anywhere (inside a line, between CR and LF).
 * Follows the HTML standard's rules that matter here: LF, CR and CRLF end lines, a blank
 * line dispatches, `data` lines join with "\n", comments (`:`) and unknown fields are
 * ignored, one space after the colon is dropped. An event that the stream ends before its
 * closing blank line is dropped, as browsers do.
 */
export class SSEParser {
  private _buffer = '';
  private _event = '';
  private _data: string[] = [];
  private _afterCR = false;

  /** Feed one chunk; returns the events it completed, in order. */
  feed(chunk: string): ISSEEvent[] {
    let text = chunk;
    if (this._afterCR && text.startsWith('\n')) {
      text = text.slice(1);
    }
    this._afterCR = false;
    this._buffer += text;
    const events: ISSEEvent[] = [];
    const lineEnd = /\r\n|\r|\n/g;
    let start = 0;
    let match: RegExpExecArray | null;
    while ((match = lineEnd.exec(this._buffer)) !== null) {
      // A CR that ends the buffer may be the first half of a CRLF split across chunks.
      if (match[0] === '\r' && match.index === this._buffer.length - 1) {
        this._afterCR = true;
      }
      const event = this._line(this._buffer.slice(start, match.index));
      if (event) {
        events.push(event);
      }
      start = match.index + match[0].length;
    }
    this._buffer = this._buffer.slice(start);
    return events;
  }

  private _line(line: string): ISSEEvent | null {
    if (line === '') {
      if (this._data.length === 0) {
        this._event = '';
        return null;
      }
      const event = {
        event: this._event || 'message',
        data: this._data.join('\n')
      };
      this._event = '';
      this._data = [];
      return event;
    }
    if (line.startsWith(':')) {
      return null;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) {
      value = value.slice(1);
    }
    if (field === 'event') {
      this._event = value;
    } else if (field === 'data') {
      this._data.push(value);
    }
    return null;
  }
}
