// The signed-in session: a user access token (a JWT, never an mk_ key),
// from dev mode's POST /dev/token or from Supabase Auth's password grant.
// It lives in memory and in sessionStorage (this tab only, gone when the
// tab closes), so a reload keeps the user signed in. A Supabase session is
// refreshed with its refresh token a minute before the access token
// expires; a session that cannot renew itself (dev mode) warns five
// minutes before it ends, so nothing typed is lost to a silent sign-out.

const storageKey = 'keyhub.session';
const refreshMargin = 60_000; // ms before expiry
const warnMargin = 5 * 60_000; // ms before an unrenewable session ends

export class Session {
  constructor(config, apiURL) {
    this.config = config;
    this.apiURL = apiURL.replace(/\/+$/, '');
    this.current = null;
    this.timer = null;
    this.warnTimer = null;
    this.onChange = () => {};
    // onExpiring(endsAt) runs warnMargin before a session that cannot renew
    // itself ends (at once if it is closer than that).
    this.onExpiring = () => {};
  }

  /** Reports whether the session can be renewed without the user. */
  renews() {
    return Boolean(this.current && this.current.kind === 'supabase' && this.current.refresh_token);
  }

  /** When the session ends (ms since the epoch), or 0 when signed out. */
  endsAt() {
    return this.current ? this.current.expires_at : 0;
  }

  /** The access token, or "" when signed out. */
  token() {
    return this.current ? this.current.access_token : '';
  }

  email() {
    return this.current ? this.current.email : '';
  }

  /** Restores the session of this tab, if it has not expired. */
  restore() {
    let saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(storageKey) || 'null');
    } catch {
      saved = null;
    }
    if (!saved || !saved.access_token) {
      return false;
    }
    if (saved.expires_at <= Date.now() && !saved.refresh_token) {
      sessionStorage.removeItem(storageKey);
      return false;
    }
    this.set(saved);
    return true;
  }

  /** Dev mode: a token for any email from keyhub itself. */
  async signInDev(email) {
    const data = await postJSON(`${this.apiURL}/dev/token`, { email }, {});
    this.set({ kind: 'dev', email, access_token: data.access_token, expires_at: Date.now() + data.expires_in * 1000 });
  }

  /** Supabase Auth: email and password, the project's anon key as apikey. */
  async signInSupabase(email, password) {
    const data = await postJSON(`${this.config.supabase_url}/auth/v1/token?grant_type=password`, { email, password }, { apikey: this.config.supabase_anon_key });
    this.setSupabase(data, email);
  }

  setSupabase(data, email) {
    this.set({
      kind: 'supabase',
      email: (data.user && data.user.email) || email,
      access_token: data.access_token,
      refresh_token: data.refresh_token,
      expires_at: Date.now() + data.expires_in * 1000,
    });
  }

  async refresh() {
    const s = this.current;
    if (!s || s.kind !== 'supabase' || !s.refresh_token) {
      return;
    }
    try {
      const data = await postJSON(`${this.config.supabase_url}/auth/v1/token?grant_type=refresh_token`, { refresh_token: s.refresh_token }, { apikey: this.config.supabase_anon_key });
      // A sign-out (or another sign-in) while the refresh was on its way
      // wins: the answer must not bring the old session back.
      if (this.current !== s) {
        return;
      }
      this.setSupabase(data, s.email);
    } catch (err) {
      if (this.current === s) {
        this.clear(`Your session could not be renewed (${err.message}). Sign in again.`);
      }
    }
  }

  set(session) {
    this.current = session;
    sessionStorage.setItem(storageKey, JSON.stringify(session));
    clearTimeout(this.timer);
    clearTimeout(this.warnTimer);
    const wait = session.expires_at - Date.now();
    if (this.renews()) {
      this.timer = setTimeout(() => this.refresh(), Math.max(0, wait - refreshMargin));
    } else {
      this.timer = setTimeout(() => this.clear('Your session has expired. Sign in again: you will be back on this page, with what you typed.'), Math.max(0, wait));
      this.warnTimer = setTimeout(() => this.onExpiring(session.expires_at), Math.max(0, wait - warnMargin));
    }
    this.onChange(null);
  }

  /** Signs out: revokes a Supabase refresh token, forgets the session. */
  async signOut() {
    const s = this.current;
    if (s && s.kind === 'supabase') {
      try {
        await fetch(`${this.config.supabase_url}/auth/v1/logout`, {
          method: 'POST',
          headers: { apikey: this.config.supabase_anon_key, Authorization: `Bearer ${s.access_token}` },
        });
      } catch {
        // Signed out locally either way; the access token expires on its own.
      }
    }
    this.clear('');
  }

  /** Forgets the session; message (if any) tells the user why. */
  clear(message) {
    clearTimeout(this.timer);
    clearTimeout(this.warnTimer);
    this.current = null;
    sessionStorage.removeItem(storageKey);
    this.onChange(message);
  }
}

// postJSON posts to an auth endpoint and returns its JSON, or throws an
// Error whose message is the endpoint's own (keyhub's code and message, or
// Supabase's error description).
async function postJSON(url, body, headers) {
  let response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch {
    throw new Error('The sign-in service could not be reached. Check your connection, then try again.');
  }
  let data = {};
  try {
    data = await response.json();
  } catch {
    data = {};
  }
  if (!response.ok) {
    if (data.error && data.error.code) {
      throw new Error(`${data.error.code}: ${data.error.message}`);
    }
    const code = data.error_code || data.error || `HTTP_${response.status}`;
    throw new Error(`${code}: ${data.error_description || data.msg || data.message || response.statusText}`);
  }
  return data;
}
