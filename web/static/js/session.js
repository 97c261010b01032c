// Who is logged in, as far as the page knows. The session itself is the HttpOnly cookie
// the service set at login; the page never sees or stores its token. The user name is
// kept in sessionStorage only to show it and to tell "expired" from "never logged in".

const KEY = 'runt.user';

export function currentUser() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) ?? 'null');
  } catch {
    return null;
  }
}

export function rememberUser(user) {
  sessionStorage.setItem(KEY, JSON.stringify({ id: user.id, username: user.username }));
}

export function forgetUser() {
  sessionStorage.removeItem(KEY);
}

// A message for the login page, shown once (why the user landed there).
let notice = null;

export function setNotice(text) {
  notice = text;
}

export function takeNotice() {
  const text = notice;
  notice = null;
  return text;
}
