// Test helpers (imported by *.test.ts only): a fake server behind ServerConnection settings.

import { ServerConnection } from '@jupyterlab/services';
import { nullTranslator } from '@jupyterlab/translation';

export const trans = nullTranslator.load('bifrost_ext');

/** A request the fake server saw. */
export interface ISeenRequest {
  url: string;
  method: string;
  headers: Headers;
  body: string | null;
}

/** A route handler: answers a request, or undefined to fall through to 404. */
export type FakeRoute = (
  request: ISeenRequest
) => Response | Promise<Response> | undefined;

/** ServerConnection settings whose fetch is `routes`, under `baseUrl`. */
export function fakeServer(
  routes: FakeRoute,
  baseUrl = 'http://localhost:8888/user/alice/'
): { settings: ServerConnection.ISettings; seen: ISeenRequest[] } {
  const seen: ISeenRequest[] = [];
  const fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init);
    const body = request.body ? await request.text() : null;
    // ServerConnection appends a cache-busting timestamp (`?1795677411902`): not ours.
    const url = request.url.replace(/[?&]\d{10,}$/, '');
    const seenRequest = {
      url,
      method: request.method,
      headers: request.headers,
      body
    };
    seen.push(seenRequest);
    return (await routes(seenRequest)) ?? json(404, { message: 'Not Found' });
  };
  const settings = ServerConnection.makeSettings({
    baseUrl,
    wsUrl: baseUrl.replace(/^http/, 'ws'),
    token: '',
    appendToken: false,
    fetch: fetch as typeof globalThis.fetch,
    Request,
    Headers,
    WebSocket: undefined as unknown as typeof WebSocket
  });
  return { settings, seen };
}

/** A JSON answer. */
export function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json' }
  });
}

/** An event-stream answer sent as the given chunks, in order. */
export function eventStream(chunks: string[]): Response {
  const encoder = new TextEncoder();
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) {
        controller.enqueue(encoder.encode(chunk));
      }
      controller.close();
    }
  });
  return new Response(stream, {
    status: 200,
    headers: { 'Content-Type': 'text/event-stream' }
  });
}

/** The text of an `output` event followed by a `result` event. */
export function changeStream(
  lines: string[],
  status: number,
  body: unknown
): string[] {
  return [
    ...lines.map(line => `event: output\ndata: ${JSON.stringify(line)}\n\n`),
    `event: result\ndata: ${JSON.stringify({ status, body })}\n\n`
  ];
}
