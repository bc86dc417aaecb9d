// The keyhub REST API as the dashboard uses it: one fetch wrapper that
// sends the session's access token and turns every failure into an
// ApiError carrying the API's stable code and message.

/** An error answer of the API (or of the network). */
export class ApiError extends Error {
  constructor(status, code, message, retryAfterSeconds) {
    super(message);
    this.status = status;
    this.code = code;
    // Seconds to wait before retrying (429), or null.
    this.retryAfterSeconds = retryAfterSeconds;
  }

  /**
   * A line for the user: the message as a sentence, when to retry (429,
   * said once: the API's own message may say it already), and the code for
   * a support request. A network failure has no code worth showing.
   */
  describe() {
    let text = sentence(this.message);
    if (this.retryAfterSeconds != null && !/\b(retry|try again)\b/i.test(this.message)) {
      const at = new Date(Date.now() + this.retryAfterSeconds * 1000).toLocaleTimeString();
      text += ` Try again in ${this.retryAfterSeconds} s (at ${at}).`;
    }
    return this.code === 'NETWORK_ERROR' ? text : `${text} (${this.code})`;
  }
}

/** sentence starts text with a capital and ends it with a full stop. */
export function sentence(text) {
  const trimmed = String(text || '').trim();
  if (!trimmed) {
    return '';
  }
  const capital = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

// Codes that mean the session is gone: the user must sign in again.
const sessionCodes = new Set(['EXPIRED_TOKEN', 'INVALID_TOKEN', 'MISSING_CREDENTIALS', 'NOT_A_USER_SESSION']);

/** Reports whether err means "sign in again". */
export function isSessionError(err) {
  return err instanceof ApiError && err.status === 401 && sessionCodes.has(err.code);
}

// retryAfter reads Retry-After (seconds or an HTTP date).
function retryAfter(response) {
  const raw = response.headers.get('Retry-After');
  if (!raw) {
    return null;
  }
  const seconds = Number(raw);
  if (Number.isFinite(seconds)) {
    return Math.max(0, Math.ceil(seconds));
  }
  const at = Date.parse(raw);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/**
 * Client calls the API at baseURL ("" = this origin) with the token that
 * getToken returns; onSessionLost runs when the API says the token is no
 * longer good.
 */
export class Client {
  constructor(baseURL, getToken, onSessionLost) {
    this.baseURL = baseURL.replace(/\/+$/, '');
    this.getToken = getToken;
    this.onSessionLost = onSessionLost;
  }

  async request(method, path, body) {
    const headers = { Accept: 'application/json' };
    const token = this.getToken();
    if (token) {
      headers.Authorization = `Bearer ${token}`;
    }
    const init = { method, headers, credentials: 'omit', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(this.baseURL + path, init);
    } catch {
      // The browser does not say why (offline, server down, or refused by
      // CORS); the words are for the user, the console has the details.
      throw new ApiError(0, 'NETWORK_ERROR', 'Cannot reach keyhub. Check your connection, then try again.', null);
    }
    let data = null;
    const text = await response.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      const detail = data && data.error ? data.error : { code: `HTTP_${response.status}`, message: response.statusText || 'request failed' };
      const err = new ApiError(response.status, detail.code, detail.message, response.status === 429 ? retryAfter(response) : null);
      if (isSessionError(err) && token) {
        this.onSessionLost(err);
      }
      throw err;
    }
    return data;
  }

  get(path) { return this.request('GET', path); }
  post(path, body) { return this.request('POST', path, body ?? {}); }
  patch(path, body) { return this.request('PATCH', path, body); }
  del(path) { return this.request('DELETE', path); }

  /** The WebSocket URL of path with a one-use ticket (never a credential). */
  async socketURL(path) {
    const { ticket } = await this.post('/v1/ws/tickets', {});
    const base = this.baseURL || window.location.origin;
    const url = new URL(path, base);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('ticket', ticket);
    return url.toString();
  }
}
