// Every call to the runt API goes through here: same-origin credentials (the HttpOnly
// session cookie), the X-Requested-With header the service requires of cookie-authenticated
// requests, and errors turned into ApiError / NetworkError with a message in words.

const BASE_HEADERS = { 'X-Requested-With': 'runt' };

export class ApiError extends Error {
  constructor(status, message, data) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.data = data ?? null;
  }

  // [{field, message}] of a 400: the validation list when there is one, else the single
  // field the message starts with ("target_episode: must be ..." -> target_episode).
  get fieldErrors() {
    if (Array.isArray(this.data?.errors)) return this.data.errors;
    const field = this.data?.field;
    if (!field) return [];
    const prefix = `${field}: `;
    const text = this.message.startsWith(prefix) ? this.message.slice(prefix.length) : this.message;
    return [{ field, message: text }];
  }
}

export class NetworkError extends Error {
  constructor() {
    super('Cannot reach the runt service (network error). Check the connection and try again.');
    this.name = 'NetworkError';
  }
}

let unauthorized = () => {};

// Called with the ApiError whenever the service answers 401 (no session, or it expired).
export function onUnauthorized(handler) {
  unauthorized = handler;
}

function urlOf(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

async function send(method, path, { body, query, accept = 'application/json', signal } = {}) {
  const headers = { ...BASE_HEADERS, Accept: accept };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store', signal };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  try {
    return await fetch(urlOf(path, query), init);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new NetworkError();
  }
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not the JSON envelope (a proxy's page, say): the status line is all there is
  }
  const message =
    typeof body?.message === 'string' && body.message
      ? body.message
      : `the service answered ${response.status} ${response.statusText}`.trim();
  const error = new ApiError(response.status, message, body?.data);
  if (response.status === 401) unauthorized(error);
  return error;
}

// The `data` of a JSON envelope; throws ApiError on any error status.
export async function call(method, path, options = {}) {
  const response = await send(method, path, options);
  if (!response.ok) throw await errorOf(response);
  try {
    const envelope = await response.json();
    return envelope.data;
  } catch {
    throw new ApiError(response.status, 'the service sent an answer that is not JSON');
  }
}

export const get = (path, query, options = {}) => call('GET', path, { ...options, query });
export const post = (path, body, options = {}) => call('POST', path, { ...options, body });

// A binary answer (a GIF) as a Blob.
export async function getBlob(path, query, options = {}) {
  const response = await send('GET', path, { ...options, query, accept: '*/*' });
  if (!response.ok) throw await errorOf(response);
  return response.blob();
}

// POST and read a streamed text/plain answer, calling onText with each decoded piece
// as it arrives.
export async function postStream(path, body, onText, { signal } = {}) {
  const response = await send('POST', path, { body, accept: 'text/plain', signal });
  if (!response.ok) throw await errorOf(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      throw new NetworkError();
    }
    if (chunk.done) break;
    const text = decoder.decode(chunk.value, { stream: true });
    if (text) onText(text);
  }
  const rest = decoder.decode();
  if (rest) onText(rest);
}

// Split a server-sent-events text buffer into complete events; returns [events, rest].
export function parseSse(buffer) {
  const events = [];
  const blocks = buffer.replace(/\r\n?/g, '\n').split('\n\n');
  const rest = blocks.pop();
  for (const block of blocks) {
    let type = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':') || !line) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length) events.push({ type, data: data.join('\n') });
  }
  return [events, rest];
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Follow a server-sent-events endpoint with fetch (so the request carries the same
// headers and errors as every other call), reconnecting with backoff when the
// connection drops. onState(state, error) gets 'open', 'retrying' or 'failed'.
// Returns a function that stops following.
export function follow(path, { onEvent, onState = () => {} }) {
  let stopped = false;
  let controller = null;

  async function readAll(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let opened = false;
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) return;
      if (!opened) {
        opened = true; // the service's ": connected" line: it now forwards events
        onState('open');
      }
      buffer += decoder.decode(chunk.value, { stream: true });
      const [events, rest] = parseSse(buffer);
      buffer = rest;
      for (const event of events) {
        let data = null;
        try {
          data = JSON.parse(event.data);
        } catch {
          continue;
        }
        onEvent(event.type, data);
      }
    }
  }

  async function run() {
    let delay = 1000;
    while (!stopped) {
      controller = new AbortController();
      try {
        const response = await send('GET', path, {
          accept: 'text/event-stream',
          signal: controller.signal,
        });
        if (!response.ok) {
          const error = await errorOf(response);
          if ([400, 401, 403, 404].includes(response.status)) {
            onState('failed', error);
            return;
          }
          throw error;
        }
        delay = 1000;
        await readAll(response);
        if (!stopped) onState('retrying', null);
      } catch (err) {
        if (stopped) return;
        onState('retrying', err.name === 'AbortError' ? null : err);
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 15000);
    }
  }

  run();
  return () => {
    stopped = true;
    controller?.abort();
  };
}

// What went wrong, in words, for any error a call can throw.
export function describe(error) {
  if (error instanceof NetworkError) return error.message;
  if (error instanceof ApiError) {
    if (error.status === 401) return 'Your session has ended. Log in again.';
    if (error.status >= 500) return `The service failed (${error.status}): ${error.message}`;
    return error.message;
  }
  if (error?.name === 'AbortError') return 'Cancelled.';
  return `Unexpected error: ${error?.message ?? error}`;
}
