// What the user reads for an error answer: pure, so every case is unit-tested. A failure of
// bifrost's own is worded once, on the server (bifrost_ext/errors.py): its body carries a
// `kind` and the one-line `message` the magic and the CLI show too, and the panel shows that
// line, with an installer's output only as details, never as the headline. An answer that
// bifrost did not word (jupyter_server's authorizer or a refused body, a proxy in between,
// no answer at all: ServerConnection.NetworkError) is worded here by its status.

import { ServerConnection } from '@jupyterlab/services';
import type { TranslationBundle } from '@jupyterlab/translation';

import { type IErrorBody, PackagesError } from './api';

/** Lines of installer output a failure shows. */
export const OUTPUT_TAIL = 20;

/** An error in the user's words: one line, and for a failed install the output's tail. */
export interface IErrorWords {
  message: string;
  detail?: string;
}

/** The words for a failed request: no answer at all, an error status, or anything else. */
export function describeFailure(
  error: unknown,
  trans: TranslationBundle
): IErrorWords {
  if (error instanceof ServerConnection.NetworkError) {
    return {
      message: trans.__('The server did not answer; nothing was changed')
    };
  }
  if (error instanceof PackagesError) {
    return describeError(error.response.status, error.body, trans);
  }
  if (error instanceof ServerConnection.ResponseError) {
    return describeError(
      error.response.status,
      { message: error.message },
      trans
    );
  }
  return { message: String(error) };
}

/** The words for an answer with this status and body. */
export function describeError(
  status: number,
  body: IErrorBody,
  trans: TranslationBundle
): IErrorWords {
  const message = typeof body.message === 'string' ? body.message : '';
  if (typeof body.kind === 'string' && message) {
    const detail = outputTail(body.output);
    return detail ? { message, detail } : { message };
  }
  switch (status) {
    case 400:
      return { message: trans.__('Refused: %1; nothing was saved', message) };
    case 403:
      return {
        message: trans.__(
          "Read-only: your server's authorizer does not allow changes to packages"
        )
      };
    case 404:
      return { message: trans.__('Not found: %1', message) };
    case 503:
      return {
        message: trans.__('The database is unavailable; nothing was saved')
      };
    default:
      return {
        message: trans.__(
          'The server answered %1: %2',
          status,
          message || trans.__('no reason given')
        )
      };
  }
}

/** The last OUTPUT_TAIL lines of an installer's output (a string or a list of lines). */
export function outputTail(output: unknown): string {
  const lines =
    typeof output === 'string'
      ? output.split(/\r?\n/)
      : Array.isArray(output)
        ? output.map(String)
        : [];
  while (lines.length > 0 && lines[lines.length - 1].trim() === '') {
    lines.pop();
  }
  return lines.slice(-OUTPUT_TAIL).join('\n');
}

/** How a change ended, as a notification shows it. */
export interface IOutcomeWords extends IErrorWords {
  ok: boolean;
}

/**
 * The notification's text for a change's outcome: a success with its warning, a failure's
 * one line alone (its details are in the panel, behind "Show details", and in the log).
 */
export function notificationText(outcome: IOutcomeWords): string {
  return outcome.ok && outcome.detail
    ? `${outcome.message}\n${outcome.detail}`
    : outcome.message;
}
