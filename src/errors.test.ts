// Every error status gets its own words.
import { describe, expect, it } from 'vitest';

import { ServerConnection } from '@jupyterlab/services';

import { PackagesError } from './api';
import {
  OUTPUT_TAIL,
  describeError,
  describeFailure,
  notificationText,
  outputTail
} from './errors';
import { trans } from './testing';

describe('describeError', () => {
  it("400 of a kind the server names is the server's line, as in the magic", () => {
    const message =
      "'bfapp' is refused by the operator's policy: denied by the package policy (bfapp); nothing was saved";
    const words = describeError(
      400,
      { message, kind: 'policy', spec: 'bfapp', reason: 'denied' },
      trans
    );
    expect(words.message).toBe(message);
  });

  it("an invalid spec is the server's line, which names the spec and why", () => {
    const message =
      "invalid requirement 'pandas @ file:///x': URLs are not allowed; nothing was saved";
    const words = describeError(
      400,
      {
        message,
        kind: 'invalid-requirement',
        spec: 'pandas @ file:///x',
        reason: 'URLs are not allowed'
      },
      trans
    );
    expect(words).toEqual({ message });
  });

  it('400 of no kind (jupyter_server refused the body) gives the message', () => {
    expect(
      describeError(400, { message: 'the body is not JSON' }, trans).message
    ).toBe('Refused: the body is not JSON; nothing was saved');
  });

  it('403 says read-only', () => {
    expect(describeError(403, { message: 'Forbidden' }, trans).message).toBe(
      "Read-only: your server's authorizer does not allow changes to packages"
    );
  });

  it.each([
    [
      404,
      'not-in-requirements',
      'not in the workspace requirements: a, b-c',
      { names: ['a', 'b-c'] }
    ],
    [404, 'unknown-revision', "no revision 99 in this workspace's history", {}],
    [
      409,
      'conflict',
      'the requirements kept changing under this request; try again',
      {}
    ],
    [
      503,
      'store-unavailable',
      'database postgresql://db/bifrost unavailable: connection refused; nothing was saved',
      {}
    ]
  ])("a %i of kind %s is the server's line", (status, kind, message, rest) => {
    expect(describeError(status, { message, kind, ...rest }, trans)).toEqual({
      message
    });
  });

  it('404 of no kind (a route that is not there) is named by its status', () => {
    expect(describeError(404, { message: 'x' }, trans).message).toBe(
      'Not found: x'
    );
  });

  it("422 shows the server's one line; the installer's output is the detail", () => {
    const output =
      Array.from({ length: 30 }, (_, i) => `line ${i}`).join('\n') + '\n\n';
    const words = describeError(
      422,
      { message: 'uv failed; nothing was saved', kind: 'installer', output },
      trans
    );
    expect(words.message).toBe('uv failed; nothing was saved');
    expect(words.detail!.split('\n')).toHaveLength(OUTPUT_TAIL);
    expect(words.detail!.endsWith('line 29')).toBe(true);
  });

  it('a typo reads as in the magic and the CLI; the toast never leads with uv', () => {
    // The API body of `install reqests` from a local wheelhouse, as the server sends it.
    const body = {
      message: "'reqests' not found in the package index; nothing was saved",
      kind: 'not-found',
      output: [
        'Using CPython 3.11.7 interpreter at: /opt/venv/bin/python',
        'error: No solution found when resolving dependencies',
        '  cause: Because reqests was not found in the provided package locations and you require reqests, we can conclude that your requirements are unsatisfiable.'
      ].join('\n')
    };
    const words = describeError(422, body, trans);
    expect(words.message).toBe(
      "'reqests' not found in the package index; nothing was saved"
    );
    expect(words.detail).toContain('Using CPython');
    const toast = notificationText({ ok: false, ...words });
    expect(toast).toBe(
      "'reqests' not found in the package index; nothing was saved"
    );
  });

  it('a success keeps its warning in the toast', () => {
    expect(
      notificationText({
        ok: true,
        message: 'Installed x',
        detail: 'saved, but'
      })
    ).toBe('Installed x\nsaved, but');
  });

  it('a 422 without a message still says something', () => {
    expect(describeError(422, {}, trans).message).toBe(
      'The server answered 422: no reason given'
    );
  });

  it('503 of no kind (not bifrost words) says the database is unavailable', () => {
    expect(describeError(503, { message: 'x' }, trans).message).toBe(
      'The database is unavailable; nothing was saved'
    );
  });

  it('a 503 of a kind the server names (its package directory) is not the database', () => {
    const message =
      'the server cannot write to its package directory /srv/site: full; nothing was saved';
    expect(
      describeError(503, { message, kind: 'directory-unusable' }, trans).message
    ).toBe(message);
  });

  it('any other status is named with its message', () => {
    expect(describeError(500, { message: 'boom' }, trans).message).toBe(
      'The server answered 500: boom'
    );
    expect(describeError(502, {}, trans).message).toBe(
      'The server answered 502: no reason given'
    );
  });

  it("no answer at all (JupyterLab's NetworkError)", () => {
    const error = new ServerConnection.NetworkError(new TypeError('offline'));
    expect(describeFailure(error, trans).message).toBe(
      'The server did not answer; nothing was changed'
    );
  });

  it("an error status (JupyterLab's ResponseError) keeps bifrost's words", () => {
    const error = new PackagesError(new Response('', { status: 422 }), {
      kind: 'install-failed',
      message: "'reqests' not found in the package index; nothing was saved",
      output: ['line 1', 'line 2']
    });
    expect(error).toBeInstanceOf(ServerConnection.ResponseError);
    expect(describeFailure(error, trans)).toEqual({
      message: "'reqests' not found in the package index; nothing was saved",
      detail: 'line 1\nline 2'
    });
    const plain = new ServerConnection.ResponseError(
      new Response('', { status: 502 }),
      'Bad Gateway'
    );
    expect(describeFailure(plain, trans).message).toBe(
      'The server answered 502: Bad Gateway'
    );
  });
});

describe('outputTail', () => {
  it('accepts a list of lines and ignores what is not output', () => {
    expect(outputTail(['a', 'b'])).toBe('a\nb');
    expect(outputTail(undefined)).toBe('');
  });
});
