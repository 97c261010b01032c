// The login page. The service answers with an HttpOnly session cookie; the token in
// the JSON answer is not kept (the cookie is the session).

import { post } from '../api.js';
import { h } from '../dom.js';
import { clearErrors, field, formError, showErrors } from '../forms.js';
import { rememberUser, takeNotice } from '../session.js';

function safeNext(raw) {
  // Only a place inside the dashboard, never another site.
  return raw && raw.startsWith('/') && !raw.startsWith('//') && !raw.startsWith('/login')
    ? raw
    : '/';
}

export function renderLogin(view, { params, navigate }) {
  const notice = takeNotice();
  const username = field({ name: 'username', label: 'Username',
    attrs: { autocomplete: 'username', required: true, autocapitalize: 'none' } });
  const password = field({ name: 'password', label: 'Password',
    attrs: { type: 'password', autocomplete: 'current-password', required: true } });
  const submit = h('button', { type: 'submit' }, 'Log in');
  const form = h('form', { class: 'card login-form', novalidate: true },
    formError(), username.wrapper, password.wrapper, h('div', { class: 'actions' }, submit));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    submit.disabled = true;
    submit.textContent = 'Logging in…';
    try {
      const data = await post('/login/', {
        username: username.control.value,
        password: password.control.value,
      });
      rememberUser(data.user);
      navigate(safeNext(params.get('next')));
    } catch (err) {
      showErrors(form, err);
      password.control.value = '';
    } finally {
      submit.disabled = false;
      submit.textContent = 'Log in';
    }
  });

  view.append(h('h1', {}, 'Log in to runt'));
  if (notice) view.append(h('p', { class: 'notice', role: 'status' }, notice));
  view.append(form);
  username.control.focus();
}
